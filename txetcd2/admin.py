"""
Cluster administration: members, leader, statistics, health, raw requests.

The calls themselves are methods of :class:`~txetcd2.EtcdClient`
(``members()``, ``leader()``, ``add_member()``, ``remove_member()``,
``update_member()``, ``version()``, ``health()``, ``machines()``,
``self_stats()``, ``leader_stats()``, ``store_stats()``, ``raw()``,
``cluster_status()``); this module holds what they return and raise.
"""

from txetcd2._admin_models import Member, RawAnswer
from txetcd2._errors import (
    EtcdAdminError,
    MemberChangeRefused,
    MemberNotFound,
    MemberRemoved,
    NoLeader,
    NotLeader,
    PeerURLExists,
)
from txetcd2._status import ClusterStatus, MemberStatus

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
