"""
The event history and the watches of :class:`~txetcd2.testing.MemoryEtcd`'s store, following
etcd's ``v2store`` (``watcher_hub.go``, ``watcher.go``, ``event_history.go``): one window of the
last events for all keys, and watches notified on their key and, for recursive ones, below it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

import attrs

from txetcd2.testing._memory_errors import StoreError


@attrs.define(eq=False)
class Event:
    """
    One change, as etcd records it in its history.
    """

    action: str
    node: dict[str, Any]
    prev: dict[str, Any] | None = None
    refresh: bool = False

    @property
    def index(self) -> int:
        index: int = self.node["modifiedIndex"]
        return index

    @property
    def key(self) -> str:
        key: str = self.node["key"]
        return key

    def body(self) -> dict[str, Any]:
        """
        The JSON document sent for it.
        """
        doc: dict[str, Any] = {"action": self.action, "node": self.node}
        if self.prev is not None:
            doc["prevNode"] = self.prev
        return doc


@attrs.define(eq=False)
class Watch:
    """
    A registered watcher: ``deliver`` gets each event it wants.
    """

    key: str
    recursive: bool
    stream: bool
    since: int
    deliver: Callable[[Event], None]
    #: the last index delivered (etcd may notify one watcher twice for one delete)
    last: int = 0


def _is_hidden(watch_path: str, key_path: str) -> bool:
    if len(watch_path) > len(key_path):
        return False
    return "/_" in clean("/" + key_path[len(watch_path) :])


def clean(key: str) -> str:
    """
    etcd's ``path.Clean(path.Join("/", key))``.
    """
    return "/" + posixpath.normpath("/" + key).lstrip("/")


class WatchHub:
    """
    The history window and the registered watches.

    :param size: how many events the history keeps (etcd: 1000).
    """

    def __init__(self, size: int) -> None:
        self.history: list[Event] = []
        self._size = size
        self._watches: dict[str, list[Watch]] = {}

    def add(self, event: Event) -> None:
        """
        Record an event in the history (the oldest beyond the window are dropped).
        """
        self.history.append(event)
        if len(self.history) > self._size:
            del self.history[: -self._size]

    def notify(self, event: Event) -> None:
        """
        Deliver an event to the watches of its key and of each ancestor.
        """
        current = "/"
        self.notify_path(event, current, deleted=False)
        for segment in event.key.strip("/").split("/"):
            current = posixpath.join(current, segment)
            self.notify_path(event, current, deleted=False)

    def notify_path(self, event: Event, path: str, deleted: bool) -> None:
        """
        Deliver an event to the watches registered on ``path`` that want it
        (``deleted``: ``path`` itself went away with the event's node).
        """
        for watch in list(self._watches.get(path, [])):
            original = event.key == path
            if not original and _is_hidden(path, event.key):
                continue
            if not (watch.recursive or original or deleted) or event.index < watch.since:
                continue
            if event.index <= watch.last:
                continue
            watch.last = event.index
            if not watch.stream:
                self.unwatch(watch)
            watch.deliver(event)

    def watch(
        self,
        key: str,
        recursive: bool,
        stream: bool,
        since: int,
        deliver: Callable[[Event], None],
        index: int,
    ) -> tuple[Event | None, Watch | None]:
        """
        etcd's ``watcherHub.watch``: the event in history at or after ``since``
        (then the watch is not registered: a stream gets that one event only),
        or a registered watch.

        :param index: the store index (carried by a 401 error).
        :returns: ``(event from history, registered watch)``.
        :raises StoreError: 401 when ``since`` is older than the history.
        """
        found = self._scan(key, recursive, since, index)
        if found is not None:
            return found, None
        watch = Watch(key, recursive, stream, since, deliver)
        self._watches.setdefault(key, []).append(watch)
        return None, watch

    def _scan(self, key: str, recursive: bool, since: int, index: int) -> Event | None:
        oldest = self.history[0].index if self.history else 0
        if since < oldest:
            cause = f"the requested history has been cleared [{oldest}/{since}]"
            raise StoreError(401, cause, index)
        prefix = key if key.endswith("/") else key + "/"
        for event in self.history:
            if event.index < since or event.refresh:
                continue
            ok = event.key == key or (recursive and event.key.startswith(prefix))
            if event.action in ("delete", "expire") and (event.prev or {}).get("dir"):
                ok = ok or key.startswith(event.key)
            if ok:
                return event
        return None

    def unwatch(self, watch: Watch) -> None:
        """
        Forget a watch (its request ended).
        """
        watches = self._watches.get(watch.key, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self._watches.pop(watch.key, None)

    @property
    def watches(self) -> list[Watch]:
        """
        The registered watches.
        """
        return [w for watches in self._watches.values() for w in watches]

    @property
    def watch_count(self) -> int:
        """
        How many watches are registered.
        """
        return sum(len(w) for w in self._watches.values())
