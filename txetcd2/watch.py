"""
Watchers that follow every change of a key or tree, exactly once and in order.
"""

from txetcd2._watcher import ACTIONS, EVENT_NAMES, Watcher

__all__ = ["ACTIONS", "EVENT_NAMES", "Watcher"]
