"""
Test helpers for code that uses txetcd2.

Real etcd members for integration tests: :func:`start_etcd` (trial), :class:`EtcdCluster` and
:class:`EtcdMember` (any reactor), :func:`running_etcd` (scripts without a reactor).
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

__all__ = [
    "ETCD_ENV_VAR",
    "EtcdBinaryNotFound",
    "EtcdCluster",
    "EtcdHarnessError",
    "EtcdMember",
    "SyncEtcdCluster",
    "SyncEtcdMember",
    "find_etcd_binary",
    "running_etcd",
    "start_etcd",
]
