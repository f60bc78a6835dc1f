"""
The conformance suite: the same key-space and watch scenarios against real etcd 3.4, real
etcd 3.5 and :class:`~txetcd2.testing.MemoryEtcd`.
"""
