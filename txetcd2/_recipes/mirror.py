"""
A local, read-only copy of everything below a prefix, kept equal to etcd by
one watcher.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from txetcd2._logs import PublicLogger
from txetcd2._recipes._shared import Emitter, check_prefix, check_seconds, clock_of
from txetcd2.errors import EtcdError, KeyNotFound
from txetcd2.models import EtcdNode, EtcdResponse

if TYPE_CHECKING:
    from txetcd2.client import EtcdClient
    from txetcd2.watch import Watcher

#: The events of :meth:`Mirror.on`.
MIRROR_EVENTS = ("change",)

#: Actions that leave a value at the event's key.
_WRITES = frozenset({"set", "create", "update", "compareAndSwap"})


class Mirror(Mapping[str, str]):
    """
    A read-only mapping from every key below ``prefix`` (full keys, like
    ``"/config/db/host"``) to its value, kept equal to etcd.

    :meth:`start` reads the tree (a quorum read), fires :attr:`ready`, then
    follows it with one :class:`~txetcd2.watch.Watcher` from the index of
    that read. When etcd lost the history the watcher needed, the watcher
    reads the tree again ("resync"); the mirror then replaces its content
    with that snapshot and reports each difference as a change.

    Directories are not entries; hidden keys (a segment starting with
    ``_``) are not seen (etcd leaves them out of recursive reads and watches).

    :param client: the client.
    :param prefix: the directory to mirror, e.g. ``"/config"``.
    :param clock: the clock of every timer (default: the client's reactor).
    :param idle_timeout: the watcher's ``idle_timeout``.

    :ivar ready: fires once the first read is applied (never, if
        :meth:`stop` comes first).
    :ivar resyncs: how many times the tree was read again after lost history.
    """

    log = PublicLogger(namespace="txetcd2.recipes.Mirror")

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        *,
        clock: IReactorTime | None = None,
        idle_timeout: float = 60.0,
    ) -> None:
        self._clock = clock_of(client, clock)
        self._client = client
        self._prefix = check_prefix(prefix)
        self._idle_timeout = check_seconds(idle_timeout, "idle_timeout")
        self._data: dict[str, str] = {}
        self._events = Emitter(MIRROR_EVENTS, f"mirror {self._prefix}")
        self._watcher: Watcher | None = None
        self._loading: Deferred[None] | None = None
        self._policy = backoffPolicy(initialDelay=0.5, maxDelay=5.0)
        self.ready: Deferred[None] = Deferred()
        self.resyncs = 0

    def __repr__(self) -> str:
        return f"<Mirror {self._prefix} {len(self._data)} keys>"

    # -- the mapping ---------------------------------------------------------

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    # -- public API ----------------------------------------------------------

    @property
    def prefix(self) -> str:
        """
        The mirrored directory.
        """
        return self._prefix

    @property
    def index(self) -> int | None:
        """
        The etcd index the mirror reflects (``None`` before :attr:`ready`).
        """
        return None if self._watcher is None else self._watcher.index

    def on(self, name: str, callback: Callable[[str, str | None, str | None], object]) -> None:
        """
        Call ``callback(key, old, new)`` for every change (``old`` is ``None``
        for a new key, ``new`` is ``None`` for a removed one).

        :raises ValueError: for a name other than ``"change"``.
        """
        self._events.on(name, callback)

    def start(self) -> None:
        """
        Read the tree and start following it (does nothing if started).
        Started again after :meth:`stop`, it reads the tree again and reports
        the differences as changes.
        """
        if self._loading is not None or self._watcher is not None:
            return
        self._loading = Deferred.fromCoroutine(self._load())
        self._loading.addErrback(self._crashed)

    def stop(self) -> Deferred[None]:
        """
        Stop following etcd (the content stays as it is).

        :returns: a Deferred firing once no request or timer is left.
        """
        loading, self._loading = self._loading, None
        if loading is not None:
            loading.cancel()
        watcher, self._watcher = self._watcher, None
        if watcher is None:
            return succeed(None)
        return watcher.stop()

    # -- following -----------------------------------------------------------

    def _crashed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        self.log.failure("mirror {prefix}: loading crashed", failure, prefix=self._prefix)

    async def _load(self) -> None:
        attempt = 0
        while True:
            try:
                snapshot = await self._client.get(
                    self._prefix, recursive=True, sorted=True, quorum=True
                )
                break
            except KeyNotFound as e:
                snapshot = EtcdResponse("get", _empty(self._prefix), etcd_index=e.index)
                break
            except EtcdError as e:
                delay = self._policy(attempt)
                attempt += 1
                self.log.warn(
                    "mirror {prefix}: first read failed ({error}); retrying in {delay:.2f}s",
                    prefix=self._prefix,
                    error=str(e),
                    delay=delay,
                )
                await deferLater(self._clock, delay)
        self._loading = None
        self._replace(snapshot)
        watcher = self._watcher = self._client.watcher(
            self._prefix,
            recursive=True,
            index=snapshot.etcd_index + 1,
            idle_timeout=self._idle_timeout,
        )
        watcher.on("change", self._changed)
        watcher.on("resync", self._resynced)
        watcher.start()
        if not self.ready.called:  # a restart after stop() reads again, reporting differences
            self.ready.callback(None)

    def _changed(self, event: EtcdResponse) -> None:
        node = event.node
        if event.action in _WRITES:
            if not node.dir and node.value is not None:
                self._put(node.key, node.value)
            return
        # delete, expire, compareAndDelete: the key, or a directory with all below it.
        below = node.key.rstrip("/") + "/"
        for key in [k for k in self._data if k == node.key or k.startswith(below)]:
            self._put(key, None)

    def _resynced(self, snapshot: EtcdResponse) -> None:
        self.resyncs += 1
        self.log.info(
            "mirror {prefix}: resync at {index}", prefix=self._prefix, index=snapshot.etcd_index
        )
        self._replace(snapshot)

    def _replace(self, snapshot: EtcdResponse) -> None:
        fresh = snapshot.node.leaves()
        for key in [k for k in self._data if k not in fresh]:
            self._put(key, None)
        for key, value in fresh.items():
            self._put(key, value)

    def _put(self, key: str, value: str | None) -> None:
        old = self._data.get(key)
        if old == value:
            return
        if value is None:
            del self._data[key]
        else:
            self._data[key] = value
        self._events.emit("change", key, old, value)


def _empty(prefix: str) -> EtcdNode:
    return EtcdNode(key=prefix, dir=True)
