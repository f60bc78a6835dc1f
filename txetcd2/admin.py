"""
Cluster administration: members, leader, statistics, health, raw requests.

The calls themselves are methods of :class:`~txetcd2.EtcdClient`
(``members()``, ``leader()``, ``add_member()``, ``remove_member()``,
``update_member()``, ``version()``, ``health()``, ``machines()``,
``self_stats()``, ``leader_stats()``, ``store_stats()``, ``raw()``,
``cluster_status()``); this module holds what they return and raise.
"""

from txetcd2._api.status import ClusterStatus, MemberStatus
from txetcd2._wire.admin_models import Member, RawAnswer
from txetcd2._wire.errors import (
    EtcdAdminError,
    MemberChangeRefused,
    MemberNotFound,
    MemberRemoved,
    NoLeader,
    NotLeader,
    PeerURLExists,
)

__all__ = [
    "ClusterStatus",
    "EtcdAdminError",
    "Member",
    "MemberChangeRefused",
    "MemberNotFound",
    "MemberRemoved",
    "MemberStatus",
    "NoLeader",
    "NotLeader",
    "PeerURLExists",
    "RawAnswer",
]
