"""
Blocking calls to etcd for code that does not run a reactor (scripts, start-up code, threads).
"""

from txetcd2._blocking import BlockingEtcdClient, ReactorThreadError

__all__ = ["BlockingEtcdClient", "ReactorThreadError"]
