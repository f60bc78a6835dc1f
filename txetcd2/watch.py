"""
Watchers that follow every change of a key or tree, exactly once and in order,
and watch coalescing: one shared stream per prefix for many local watchers.
"""

from txetcd2._watch.hub import HubWatcher, WatchHub
from txetcd2._watch.lag import Lag
from txetcd2._watch.listeners import ACTIONS, EVENT_NAMES
from txetcd2._watch.source import WatchSource
from txetcd2._watch.states import State
from txetcd2._watch.watcher import Watcher

__all__ = [
    "ACTIONS",
    "EVENT_NAMES",
    "HubWatcher",
    "Lag",
    "State",
    "WatchHub",
    "WatchSource",
    "Watcher",
]
