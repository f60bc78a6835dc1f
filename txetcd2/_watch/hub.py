"""
Watch coalescing: one server stream per watched prefix, fanned out to many
local watchers.

A :class:`WatchHub` owns one recursive :class:`~txetcd2.watch.Watcher` on a
prefix. :meth:`WatchHub.watcher` builds :class:`HubWatcher` objects, with the
Watcher's public API, for keys at or below the prefix. The shared Watcher
runs while at least one of them does: started with the first, stopped with
the last. Each event is handed to exactly the local watchers a plain Watcher
on their key would have been given it to, in the shared stream's order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from txetcd2._logs import PublicLogger
from txetcd2._transport.deadline import follow
from txetcd2._watch.listeners import ACTIONS
from txetcd2._watch.states import Lifecycle, State
from txetcd2._watch.watcher import Watcher
from txetcd2._wire.keys import hidden_below, normalize_key
from txetcd2._wire.models import EtcdNode, EtcdResponse

#: Actions that remove a node, and so notify the watchers of every key below it.
_REMOVALS = frozenset(("delete", "expire", "compareAndDelete"))


def _below(key: str, top: str) -> bool:
    """
    :returns: whether ``key`` is strictly below ``top``.
    """
    return key != top and (top == "/" or key.startswith(top + "/"))


def _ancestors(key: str, top: str) -> list[str]:
    """
    :returns: ``key`` and its ancestors down to ``top`` (``key`` below or at ``top``).
    """
    found = [key]
    while key != top:
        key = key.rsplit("/", 1)[0] or "/"
        found.append(key)
    return found


def _cut(node: EtcdNode, key: str, recursive: bool) -> EtcdNode | None:
    """
    The part of a recursive, sorted listing that a read of ``key`` returns.

    :param node: the listing (``key`` at or below it).
    :param key: the key read.
    :param recursive: a recursive read (else: children without their children).
    :returns: the node, or ``None`` when the listing does not have it.
    """
    while node.key != key:
        for child in node.nodes:
            if child.key == key or _below(key, child.key):
                node = child
                break
        else:
            return None
    if recursive or not node.nodes:
        return node
    return attrs.evolve(node, nodes=tuple(attrs.evolve(c, nodes=()) for c in node.nodes))


class WatchHub:
    """
    One shared stream on a prefix for many local watchers (watch coalescing).

    Each watcher built with :meth:`watcher` costs a few hundred bytes and no
    connection; etcd registers one watcher for the whole hub, and the hub's
    stream pays the liveness probe once for all of them. Build it with the
    same client the local watchers would otherwise use. When the shared
    stream stops by itself (an error retrying cannot fix, or the client's
    ``close()``), every local watcher stops with it.

    :param client: the :class:`~txetcd2.EtcdClient` (or a
        :class:`~txetcd2._watch.source.WatchSource`) whose members, agent
        and clock are used.
    :param prefix: the directory below which the local watchers' keys are.
    :param index: the first index the shared stream reports (default:
        changes after it first started).
    :param retry_policy: see :class:`~txetcd2.watch.Watcher`.
    :param idle_timeout: see :class:`~txetcd2.watch.Watcher`.
    :param probe_interval: see :class:`~txetcd2.watch.Watcher`.
    :raises TypeError: for arguments of the wrong type.
    :raises ValueError: for a bad prefix, index or timeout.
    """

    log = PublicLogger(namespace="txetcd2.watch.WatchHub")

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        index: int | None = None,
        retry_policy: Callable[[int], float] | None = None,
        idle_timeout: float = 60.0,
        probe_interval: float | None = 5.0,
    ) -> None:
        self._source = Watcher(
            client,
            prefix,
            index=index,
            recursive=True,
            retry_policy=retry_policy,
            idle_timeout=idle_timeout,
            probe_interval=probe_interval,
        )
        self._prefix = self._source.key
        #: running local watchers, by key
        self._by_key: dict[str, list[HubWatcher]] = {}
        #: running recursive local watchers, by key
        self._deep: dict[str, list[HubWatcher]] = {}
        self._count = 0
        self._stopping: Deferred[None] | None = None
        self._source.on("change", self._changed)
        self._source.on("resync", self._resynced)
        self._source.on("reconnect", lambda delay: self._broadcast("reconnect", delay))
        self._source.on("lagging", lambda lag: self._broadcast("lagging", lag))
        self._source.on("error", lambda failure: self._broadcast("error", failure))
        self._source.on("stop", self._source_stopped)

    def __repr__(self) -> str:
        return f"<WatchHub {self._prefix} watchers={self._count} source={self._source!r}>"

    @property
    def prefix(self) -> str:
        """
        The watched prefix, in canonical form.
        """
        return self._prefix

    @property
    def source(self) -> Watcher:
        """
        The shared recursive Watcher (for its :attr:`~txetcd2.watch.Watcher.index`
        and :attr:`~txetcd2.watch.Watcher.endpoint`; start and stop the local
        watchers, not it).
        """
        return self._source

    @property
    def running(self) -> int:
        """
        How many local watchers run now.
        """
        return self._count

    def watcher(self, key: str, *, recursive: bool = False) -> HubWatcher:
        """
        Build a local watcher of ``key``, fed by the shared stream.

        :param key: the key or directory, at or below :attr:`prefix`.
        :param recursive: watch everything below a directory.
        :returns: the local watcher, not started.
        :raises TypeError: for arguments of the wrong type.
        :raises ValueError: for a key outside the prefix, or one that the
            prefix's recursive stream does not carry (a segment below the
            prefix starts with ``_``: etcd hides such keys from recursive
            watches; use a plain Watcher).
        """
        canonical = normalize_key(key)
        if canonical != self._prefix and not _below(canonical, self._prefix):
            raise ValueError(
                f"key {canonical!r} is not at or below the hub's prefix {self._prefix!r}; "
                "use a hub on a common ancestor or a plain Watcher"
            )
        if hidden_below(self._prefix, canonical):
            raise ValueError(
                f"key {canonical!r} has a hidden segment (starting with '_') below the "
                f"prefix {self._prefix!r}: etcd leaves it out of the prefix's stream; "
                "use a plain Watcher"
            )
        if not isinstance(recursive, bool):
            raise TypeError(f"recursive must be a bool, not {type(recursive).__name__}")
        return HubWatcher(self, canonical, recursive)

    # -- the local watchers' lifecycle ----------------------------------------

    def _join(self, local: HubWatcher) -> None:
        self._by_key.setdefault(local.key, []).append(local)
        if local.recursive:
            self._deep.setdefault(local.key, []).append(local)
        self._count += 1
        if self._count == 1 and self._stopping is None:
            self._source.start()
        # else: already running, or restarted once the stop in progress completes.

    def _leave(self, local: HubWatcher) -> Deferred[None]:
        for table in (self._by_key, self._deep):
            found = table.get(local.key)
            if found is not None and local in found:
                found.remove(local)
                if not found:
                    del table[local.key]
        self._count -= 1
        if self._count > 0:
            return succeed(None)
        if self._stopping is not None:
            return follow(self._stopping)
        stopping: Deferred[None] = Deferred()
        self._stopping = stopping

        def stopped(_: object) -> None:
            self._stopping = None
            if self._count > 0:
                self._source.start()
            stopping.callback(None)

        self._source.stop().addBoth(stopped)
        return follow(stopping)

    def _source_stopped(self, failure: Failure | None) -> None:
        if self._stopping is not None:
            return  # the last local watcher left
        # Stopped by itself (a fatal error) or by the client's close(): so are the locals.
        for locals_ in list(self._by_key.values()):
            for local in list(locals_):
                if local._live():
                    local._wind_down(failure)

    # -- fan-out --------------------------------------------------------------

    def _changed(self, event: EtcdResponse) -> None:
        key = event.node.key
        targets: list[HubWatcher] = []
        if key == self._prefix or _below(key, self._prefix):
            targets.extend(self._by_key.get(key, ()))
            for above in _ancestors(key, self._prefix)[1:]:
                targets.extend(self._deep.get(above, ()))
        if event.action in _REMOVALS and event.node.dir:
            # A removed directory notifies the watchers of every key below it.
            for watched, locals_ in list(self._by_key.items()):
                if _below(watched, key):
                    targets.extend(locals_)
        for local in targets:
            local._deliver(event)

    def _resynced(self, snapshot: EtcdResponse) -> None:
        for locals_ in list(self._by_key.values()):
            for local in list(locals_):
                node = _cut(snapshot.node, local.key, local.recursive)
                if node is None:
                    view = EtcdResponse(
                        action="get", node=EtcdNode(key=local.key), etcd_index=snapshot.etcd_index
                    )
                else:
                    view = attrs.evolve(snapshot, node=node)
                local._resync(view)

    def _broadcast(self, name: str, payload: object) -> None:
        for locals_ in list(self._by_key.values()):
            for local in list(locals_):
                local._emit(name, payload)


class HubWatcher(Lifecycle):
    """
    A watcher of one key fed by a :class:`WatchHub`'s shared stream, with
    :class:`~txetcd2.watch.Watcher`'s API; build it with
    :meth:`WatchHub.watcher`.

    It gets the changes a plain Watcher of its key would get, once and in
    order: changes of its key (and, when recursive, of the keys below it),
    the removal (``delete``, ``expire``, ``compareAndDelete``) of a directory
    above it, resync snapshots cut down to its key (read non-recursively
    unless recursive; ``node`` without value, children or index when the key
    is missing), and the shared stream's ``"reconnect"``, ``"lagging"`` and
    ``"error"`` notifications; it stops when the shared stream stops by
    itself. Differences from a plain Watcher:

    - it joins the shared stream where it is: started (or started again
      after :meth:`stop`) while the hub's stream runs, it reports the changes
      from then on; its :attr:`index` starts at the stream's;
    - a directory's removal is reported to every watcher of a key below it,
      even one whose key did not exist then (etcd tells only the watchers of
      keys that existed).
    """

    log = PublicLogger(namespace="txetcd2.watch.HubWatcher")

    def __init__(self, hub: WatchHub, key: str, recursive: bool) -> None:
        self._hub = hub
        self._key = key
        self._recursive = recursive
        self._listeners: dict[str, list[Callable[[Any], object]]] | None = None
        self._index: int | None = None

    def __repr__(self) -> str:
        return (
            f"<HubWatcher {self._key} recursive={self._recursive} index={self._index} "
            f"{self._state.value} via {self._hub.prefix}>"
        )

    @property
    def key(self) -> str:
        """
        The watched key, in canonical form.
        """
        return self._key

    @property
    def recursive(self) -> bool:
        """
        Whether the keys below :attr:`key` are watched too.
        """
        return self._recursive

    @property
    def endpoint(self) -> str:
        """
        The member the shared stream talks to now (or will talk to next).
        """
        return self._hub.source.endpoint

    @property
    def index(self) -> int | None:
        """
        The index of the last change accounted for: the ``modifiedIndex`` of
        the last delivered event, or the ``etcd_index`` of the last resync
        snapshot; when started, the shared stream's index (``None`` before
        the stream's first change).
        """
        return self._index

    def _begin(self) -> None:
        self._enter(State.STREAMING)
        if self._index is None:
            self._index = self._hub.source.index
        self._hub._join(self)

    def _halt(self) -> Deferred[object]:
        left: Deferred[object] = self._hub._leave(self).addBoth(lambda _: None)
        return left

    def _deliver(self, event: EtcdResponse) -> None:
        if not self._live():
            return
        if self._index is not None and event.index <= self._index:
            return
        self._index = event.index
        self._emit("change", event)
        if event.action in ACTIONS:
            self._emit(event.action, event)

    def _resync(self, snapshot: EtcdResponse) -> None:
        if not self._live():
            return
        self._index = snapshot.etcd_index
        self._emit("resync", snapshot)
