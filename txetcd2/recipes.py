"""
Recipes built on etcd's key space, done right: a fair :class:`Lock` with
fencing tokens, :class:`LeaderElection`, :class:`ServiceRegistration` and a
:class:`Mirror` of a prefix. Each uses only the public client and watcher.
"""

from txetcd2._recipes.election import ELECTION_PREFIX, LeaderElection
from txetcd2._recipes.lock import LOCK_PREFIX, Lock, LockNotAcquired
from txetcd2._recipes.mirror import Mirror
from txetcd2._recipes.registration import ServiceRegistration

__all__ = [
    "ELECTION_PREFIX",
    "LOCK_PREFIX",
    "LeaderElection",
    "Lock",
    "LockNotAcquired",
    "Mirror",
    "ServiceRegistration",
]
