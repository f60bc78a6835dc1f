"""
Real etcd members started on this machine: for tests (``txetcd2.testing``), the demo
and the benchmarks.
"""
