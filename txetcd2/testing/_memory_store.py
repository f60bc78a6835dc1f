"""
The v2 store behind :class:`~txetcd2.testing.MemoryEtcd`: nodes, indexes and
TTLs, following etcd's ``v2store`` (``store.go``, ``node.go``); its events go
to the history and watches of :mod:`txetcd2.testing._memory_watches`.

No I/O here: the web layer (:mod:`txetcd2.testing._memory_web`) turns HTTP
requests into calls on :class:`Store` and its answers back into bytes.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from txetcd2.testing._memory_errors import StoreError
from txetcd2.testing._memory_watches import Event, Watch, WatchHub, clean

#: Events kept for ``waitIndex`` (etcd's ``EventHistory`` capacity).
HISTORY_SIZE = 1000

#: A ``ttl`` at or above this silently means "no TTL" (int64 nanoseconds overflow).
TTL_OVERFLOW = 7428128579

__all__ = ["HISTORY_SIZE", "Event", "Options", "Store", "StoreError", "Watch", "clean"]


@attrs.define(eq=False)
class Node:
    """
    A key or a directory.
    """

    path: str
    created: int
    modified: int
    value: str | None
    parent: Node | None
    children: dict[str, Node] | None = None
    expires: float | None = None

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def walk(self) -> Iterator[Node]:
        """
        This node and everything below it, depth first, children before parents.
        """
        for child in list((self.children or {}).values()):
            yield from child.walk()
        yield self


@attrs.define(frozen=True)
class Options:
    """
    The TTL options of a write: ``ttl`` seconds (``None``: none) and ``refresh``.
    """

    ttl: int | None = None
    refresh: bool = False


class Store:
    """
    One cluster's v2 key space.

    :param clock: drives TTLs (``seconds()``, ``callLater``).
    :param epoch: the wall-clock time (POSIX seconds) at ``clock.seconds() == 0``.
    :param history: events kept for ``waitIndex``.
    """

    def __init__(self, clock: IReactorTime, epoch: float, history: int = HISTORY_SIZE) -> None:
        self._clock = clock
        self._epoch = epoch
        self.index = 0
        self.root = Node("/", 0, 0, None, None, {})
        self.hub = WatchHub(history)
        self._expiry: IDelayedCall | None = None
        self._expiring: dict[int, Node] = {}

    # -- reads -------------------------------------------------------------------

    def get(self, key: str, recursive: bool, sort: bool) -> dict[str, Any]:
        """
        The ``get`` answer for a key (a directory lists its children).
        """
        path = clean(key)
        node = self._find(path)
        extern = self._extern(node, recursive=False, sort=sort)
        if node.is_dir:
            nodes = [self._extern(c, recursive, sort) for c in self._visible(node)]
            if sort:
                nodes.sort(key=lambda n: n["key"])
            if nodes:
                extern["nodes"] = nodes
        return {"action": "get", "node": extern}

    def _visible(self, node: Node) -> list[Node]:
        return [c for c in (node.children or {}).values() if not c.name.startswith("_")]

    def _find(self, path: str) -> Node:
        node = self.root
        for name in path.strip("/").split("/") if path != "/" else []:
            if node.children is None:
                raise StoreError(104, node.path, self.index)
            child = node.children.get(name)
            if child is None:
                raise StoreError(100, posixpath.join(node.path, name), self.index)
            node = child
        return node

    def _extern(self, node: Node, recursive: bool, sort: bool) -> dict[str, Any]:
        if node is self.root:
            return {"dir": True}
        doc: dict[str, Any] = {"key": node.path}
        if node.is_dir:
            doc["dir"] = True
        else:
            doc["value"] = node.value
        self._add_ttl(doc, node)
        doc["modifiedIndex"] = node.modified
        doc["createdIndex"] = node.created
        if node.is_dir and recursive:
            nodes = [self._extern(c, True, sort) for c in self._visible(node)]
            if sort:
                nodes.sort(key=lambda n: n["key"])
            if nodes:
                doc["nodes"] = nodes
        return doc

    def _add_ttl(self, doc: dict[str, Any], node: Node) -> None:
        if node.expires is None:
            return
        left = node.expires - self._clock.seconds()
        wall = datetime.fromtimestamp(self._epoch + node.expires, timezone.utc)
        doc["expiration"] = wall.isoformat().replace("+00:00", "Z")
        ttl = math.ceil(left) if left > 0 else 0
        if ttl:
            doc["ttl"] = ttl

    # -- writes ------------------------------------------------------------------

    def _check_writable(self, path: str) -> None:
        if path == "/":
            raise StoreError(107, "/", self.index)

    def _expires(self, options: Options) -> float | None:
        if options.ttl is None or options.ttl >= TTL_OVERFLOW:
            return None
        return self._clock.seconds() + options.ttl

    def set(self, key: str, value: str, is_dir: bool, options: Options) -> Event:
        """
        etcd's ``Set``: create or replace (a refresh keeps the value).
        """
        path = clean(key)
        try:
            old: Node | None = self._find(path)
        except StoreError as e:
            if e.code != 100:
                raise
            old = None
        if options.refresh:
            if old is None:
                self._find(path)
            assert old is not None
            value = old.value or ""
        event = self._create(path, value, is_dir, replace=True, action="set", options=options)
        return self._commit(event, options.refresh)

    def create(
        self, key: str, value: str, is_dir: bool, options: Options, unique: bool = False
    ) -> Event:
        """
        etcd's ``Create`` (``unique``: an in-order key under ``key``).
        """
        path = clean(key)
        if unique:
            path = clean(f"{path}/{self.index + 1:020d}")
        event = self._create(path, value, is_dir, replace=False, action="create", options=options)
        return self._commit(event, refresh=False)

    def _create(
        self, path: str, value: str, is_dir: bool, replace: bool, action: str, options: Options
    ) -> Event:
        self._check_writable(path)
        parent = self._make_dirs(posixpath.dirname(path))
        assert parent.children is not None
        name = posixpath.basename(path)
        existing = parent.children.get(name)
        index = self.index + 1
        prev = None
        if existing is not None:
            if not replace:
                raise StoreError(105, path, self.index)
            if existing.is_dir:
                raise StoreError(102, path, self.index)
            prev = self._extern(existing, recursive=False, sort=False)
            self._unlink(existing)
        node = Node(path, index, index, None if is_dir else value, parent, {} if is_dir else None)
        node.expires = self._expires(options)
        parent.children[name] = node
        doc: dict[str, Any] = {"key": path}
        if is_dir:
            doc["dir"] = True
        else:
            doc["value"] = value
        self._add_ttl(doc, node)
        doc["modifiedIndex"] = index
        doc["createdIndex"] = index
        self.index = index
        self._track(node)
        return Event(action, doc, prev)

    def _make_dirs(self, path: str) -> Node:
        node = self.root
        for name in path.strip("/").split("/") if path != "/" else []:
            assert node.children is not None
            child = node.children.get(name)
            if child is None:
                index = self.index + 1
                child = Node(posixpath.join(node.path, name), index, index, None, node, {})
                node.children[name] = child
            elif not child.is_dir:
                raise StoreError(104, child.path, self.index)
            node = child
        return node

    def update(self, key: str, value: str, options: Options) -> Event:
        """
        etcd's ``Update``: the key must exist; ``createdIndex`` is kept.
        """
        path = clean(key)
        self._check_writable(path)
        node = self._find(path)
        if node.is_dir and value:
            raise StoreError(102, path, self.index)
        if options.refresh:
            value = node.value or ""
        return self._rewrite(node, "update", value, options)

    def compare_and_swap(
        self, key: str, prev_value: str, prev_index: int, value: str, options: Options
    ) -> Event:
        """
        etcd's ``CompareAndSwap``.
        """
        path = clean(key)
        self._check_writable(path)
        node = self._find(path)
        if node.is_dir:
            raise StoreError(102, path, self.index)
        self._compare(node, prev_value, prev_index)
        if options.refresh:
            value = node.value or ""
        return self._rewrite(node, "compareAndSwap", value, options)

    def _compare(self, node: Node, prev_value: str, prev_index: int) -> None:
        index_ok = prev_index == 0 or node.modified == prev_index
        value_ok = prev_value == "" or node.value == prev_value
        if index_ok and value_ok:
            return
        values = f"[{prev_value} != {node.value}]"
        indexes = f"[{prev_index} != {node.modified}]"
        cause = indexes if value_ok else values if index_ok else f"{values} {indexes}"
        raise StoreError(101, cause, self.index)

    def _rewrite(self, node: Node, action: str, value: str, options: Options) -> Event:
        prev = self._extern(node, recursive=False, sort=False)
        self.index += 1
        self._untrack(node)
        node.modified = self.index
        if not node.is_dir:
            node.value = value
        node.expires = self._expires(options)
        self._track(node)
        doc: dict[str, Any] = {"key": node.path}
        if node.is_dir:
            doc["dir"] = True
        else:
            doc["value"] = value
        self._add_ttl(doc, node)
        doc["modifiedIndex"] = self.index
        doc["createdIndex"] = node.created
        return self._commit(Event(action, doc, prev), options.refresh)

    def delete(self, key: str, is_dir: bool, recursive: bool) -> Event:
        """
        etcd's ``Delete`` (``recursive`` implies ``is_dir``).
        """
        path = clean(key)
        self._check_writable(path)
        node = self._find(path)
        if node.is_dir:
            if not (is_dir or recursive):
                raise StoreError(102, path, self.index)
            if node.children and not recursive:
                raise StoreError(108, path, self.index)
        return self._remove(node, "delete")

    def compare_and_delete(self, key: str, prev_value: str, prev_index: int) -> Event:
        """
        etcd's ``CompareAndDelete``.
        """
        path = clean(key)
        node = self._find(path)
        if node.is_dir:
            raise StoreError(102, path, self.index)
        self._compare(node, prev_value, prev_index)
        return self._remove(node, "compareAndDelete")

    def _remove(self, node: Node, action: str) -> Event:
        prev = self._extern(node, recursive=False, sort=False)
        self.index += 1
        doc: dict[str, Any] = {"key": node.path}
        if node.is_dir:
            doc["dir"] = True
        doc["modifiedIndex"] = self.index
        doc["createdIndex"] = node.created
        event = Event(action, doc, prev)
        gone = list(node.walk())
        self._unlink(node)
        self.hub.add(event)
        for each in gone:
            self.hub.notify_path(event, each.path, deleted=True)
        self.hub.notify(event)
        return event

    def _unlink(self, node: Node) -> None:
        for each in node.walk():
            self._untrack(each)
        if node.parent is not None and node.parent.children is not None:
            node.parent.children.pop(node.name, None)

    # -- TTLs --------------------------------------------------------------------

    def _track(self, node: Node) -> None:
        if node.expires is not None:
            self._expiring[id(node)] = node
            self._schedule()

    def _untrack(self, node: Node) -> None:
        if self._expiring.pop(id(node), None) is not None:
            self._schedule()

    def _schedule(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        if self._expiring:
            due = min(n.expires for n in self._expiring.values() if n.expires is not None)
            delay = max(0.0, due - self._clock.seconds())
            self._expiry = self._clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = self._clock.seconds()
        while True:
            due = [(n.expires or 0.0, n.modified, n) for n in self._expiring.values()]
            due = [d for d in due if d[0] <= now]
            if not due:
                break
            self._remove(min(due, key=lambda d: d[:2])[2], "expire")
        self._schedule()

    def close(self) -> None:
        """
        Cancel the pending expiry timer (the keys keep their TTLs).
        """
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None

    # -- history and watches -------------------------------------------------------

    def _commit(self, event: Event, refresh: bool) -> Event:
        event.refresh = refresh
        self.hub.add(event)
        if not refresh:
            self.hub.notify(event)
        return event

    def watch(
        self, key: str, recursive: bool, stream: bool, since: int, deliver: Callable[[Event], None]
    ) -> tuple[Event | None, Watch | None, int]:
        """
        etcd's ``Watch`` (see :meth:`WatchHub.watch`) from the current index.

        :returns: ``(event from history, registered watch, store index at the start)``.
        """
        start = self.index
        path = clean(key)
        found, watch = self.hub.watch(path, recursive, stream, since or start + 1, deliver, start)
        return found, watch, start
