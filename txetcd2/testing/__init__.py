"""
Test helpers for code that uses txetcd2.

- In-memory etcd for unit tests: :class:`MemoryEtcd` (``etcd.client()``: a client with no
  network, driven by a :class:`~twisted.internet.task.Clock`) and :func:`memory_etcd` (trial).
- Real etcd members for integration tests: :func:`start_etcd` (trial), :class:`EtcdCluster` and
  :class:`EtcdMember` (any reactor), :func:`running_etcd` (scripts without a reactor).
- Network faults in front of a real member: :class:`FaultProxy`.
"""

from txetcd2._embedded.harness import (
    ETCD_ENV_VAR,
    EtcdBinaryNotFound,
    EtcdCluster,
    EtcdHarnessError,
    EtcdMember,
    SyncEtcdCluster,
    SyncEtcdMember,
    find_etcd_binary,
    running_etcd,
    start_etcd,
)
from txetcd2.testing._memory import MemoryEtcd
from txetcd2.testing._memory_member import MemoryMember, MemoryRequest
from txetcd2.testing._proxy import FaultProxy
from txetcd2.testing._trial import memory_etcd

__all__ = [
    "ETCD_ENV_VAR",
    "EtcdBinaryNotFound",
    "EtcdCluster",
    "EtcdHarnessError",
    "EtcdMember",
    "FaultProxy",
    "MemoryEtcd",
    "MemoryMember",
    "MemoryRequest",
    "SyncEtcdCluster",
    "SyncEtcdMember",
    "find_etcd_binary",
    "memory_etcd",
    "running_etcd",
    "start_etcd",
]
