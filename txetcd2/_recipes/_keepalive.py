"""
Keeping a TTL key alive with ``refresh`` (which wakes no watcher), and
knowing when it can no longer be trusted to exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from txetcd2._logs import PublicLogger
from txetcd2._wire.fatal import is_fatal
from txetcd2.errors import EtcdError, EventIndexCleared, KeyNotFound

if TYPE_CHECKING:
    from txetcd2.client import EtcdClient


class KeepAlive:
    """
    Refreshes ``key`` every ``ttl / 3`` seconds; retries sooner after a
    failure. Two outcomes end it:

    - ``on_gone("missing")``: etcd answered that the key does not exist, or
      it is another node now (created at another index: deleted and created
      again by someone else; a refresh does not compare, so it renewed that
      node, harmlessly);
    - ``on_gone("expired")``: no refresh succeeded for ``ttl`` seconds since
      the last successful one was *sent*, less a safety margin of a tenth of
      the TTL (at most 0.5 s) against clocks that drift apart (the key may
      have expired: etcd started its TTL when it applied the refresh, at or
      after that moment, so the holder gives up first); or at once, when a
      refresh failed with an error retrying cannot fix (a closed client,
      credentials refused...): no refresh will succeed.

    :param client: the client.
    :param clock: the clock of every timer.
    :param key: the key.
    :param ttl: its TTL in seconds.
    :param on_gone: called once, with ``"missing"`` or ``"expired"``.
    :param on_refreshed: called with the new ``modifiedIndex`` after each refresh.
    :param created_index: the ``createdIndex`` of the node to keep alive.
    :param watch: also watch the key, to learn at once when it is deleted
        or replaced (otherwise: at the next refresh).
    """

    log = PublicLogger(namespace="txetcd2.recipes")

    def __init__(
        self,
        client: EtcdClient,
        clock: IReactorTime,
        key: str,
        ttl: int,
        on_gone: Callable[[str], object],
        on_refreshed: Callable[[int], object] = lambda index: None,
        *,
        created_index: int = 0,
        watch: bool = False,
    ) -> None:
        self._client = client
        self._clock = clock
        self._key = key
        self._ttl = ttl
        self._interval = ttl / 3.0
        self._margin = min(0.5, ttl / 10.0)
        self._retry = min(1.0, self._interval)
        self._on_gone = on_gone
        self._on_refreshed = on_refreshed
        self._deadline: IDelayedCall | None = None
        self._loop: Deferred[None] | None = None
        self._created = created_index
        self._watch = watch
        self._watching: Deferred[None] | None = None
        self.renewed_at: float | None = None

    def start(self, written_at: float) -> None:
        """
        Start refreshing a key written (or refreshed) by a request sent at ``written_at``.
        """
        self._arm(written_at)
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(self._crashed)
        if self._watch:
            self._watching = Deferred.fromCoroutine(self._follow())
            self._watching.addErrback(self._crashed)

    def stop(self) -> None:
        """
        Stop refreshing: cancels the request in flight and every timer. Idempotent.
        """
        self._disarm()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
        watching, self._watching = self._watching, None
        if watching is not None:
            watching.cancel()

    @property
    def running(self) -> bool:
        """
        Whether it still refreshes the key.
        """
        return self._loop is not None

    def _crashed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        self.log.failure("{key}: the TTL refresh loop crashed", failure, key=self._key)
        self._gone("crashed")

    def _arm(self, written_at: float) -> None:
        self.renewed_at = written_at
        self._disarm()
        delay = max(0.0, written_at + self._ttl - self._margin - self._clock.seconds())
        self._deadline = self._clock.callLater(delay, self._gone, "expired")

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _gone(self, why: str) -> None:
        self._deadline = None
        if self._loop is None:
            return
        self.log.warn("{key}: cannot be sure the key exists ({why})", key=self._key, why=why)
        self.stop()
        self._on_gone(why)

    async def _run(self) -> None:
        delay = self._interval
        while True:
            await deferLater(self._clock, delay)
            sent = self._clock.seconds()
            try:
                response = await self._client.refresh(
                    self._key, self._ttl, timeout=max(0.5, self._interval)
                )
            except KeyNotFound:
                self._loop = None  # this loop returns: nothing to cancel
                self._ended("missing")
                return
            except EtcdError as e:
                if is_fatal(e):
                    # Retrying cannot fix it: the key cannot be kept, say so now
                    # rather than when its TTL runs out.
                    self._loop = None  # this loop returns: nothing to cancel
                    self.log.error(
                        "{key}: TTL refresh failed ({error}); giving up (retrying cannot "
                        "fix this)",
                        key=self._key,
                        error=str(e),
                    )
                    self.stop()
                    self._on_gone("expired")
                    return
                self.log.warn(
                    "{key}: TTL refresh failed ({error}); retrying in {delay:.2f}s",
                    key=self._key,
                    error=str(e),
                    delay=self._retry,
                )
                delay = self._retry
                continue
            if self._created and response.node.created_index != self._created:
                self._loop = None  # this loop returns: nothing to cancel
                self._ended("missing")
                return
            delay = self._interval
            self._arm(sent)
            self._on_refreshed(response.node.modified_index)

    def _ended(self, why: str) -> None:
        # Called by the refresh loop (which then returns) or the watch (which
        # set _watching to None): stop() cancels the other one.
        self.log.warn("{key}: the key is gone or replaced", key=self._key)
        self.stop()
        self._on_gone(why)

    async def _follow(self) -> None:
        """
        Watch the key; end (``"missing"``) when it is deleted, expires or is replaced.
        """
        index: int | None = None
        while True:
            try:
                if index is None:
                    response = await self._client.get(self._key, quorum=True)
                    if response.node.created_index != self._created:
                        break
                    index = response.etcd_index + 1
                event = await self._client.watch(self._key, index=index)
            except KeyNotFound:
                break
            except EventIndexCleared:
                index = None
                continue
            except EtcdError as e:
                self.log.warn("{key}: watch failed ({error})", key=self._key, error=str(e))
                index = None
                await deferLater(self._clock, self._retry)
                continue
            if event.node.created_index != self._created or event.action in _GONE:
                break
            index = event.index + 1
        self._watching = None  # the watch ends by itself: nothing to cancel there
        if self._loop is not None:
            self._ended("missing")


#: Actions after which a key no longer exists.
_GONE = frozenset({"delete", "expire", "compareAndDelete"})
