"""
Keeping a TTL key alive with ``refresh`` (which wakes no watcher), and
knowing when it can no longer be trusted to exist.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from txetcd2 import EtcdClient, EtcdError, KeyNotFound


class KeepAlive:
    """
    Refreshes ``key`` every ``ttl / 3`` seconds; retries sooner after a
    failure. Two outcomes end it:

    - ``on_gone("missing")``: etcd answered that the key does not exist;
    - ``on_gone("expired")``: no refresh succeeded for ``ttl`` seconds since
      the last successful one was *sent* (the key may have expired: etcd
      started its TTL when it applied the refresh, at or after that moment).

    :param client: the client.
    :param clock: the clock of every timer.
    :param key: the key.
    :param ttl: its TTL in seconds.
    :param on_gone: called once, with ``"missing"`` or ``"expired"``.
    :param on_refreshed: called with the new ``modifiedIndex`` after each refresh.
    """

    log = Logger()

    def __init__(
        self,
        client: EtcdClient,
        clock: IReactorTime,
        key: str,
        ttl: int,
        on_gone: Callable[[str], object],
        on_refreshed: Callable[[int], object] = lambda index: None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._key = key
        self._ttl = ttl
        self._interval = ttl / 3.0
        self._retry = min(1.0, self._interval)
        self._on_gone = on_gone
        self._on_refreshed = on_refreshed
        self._deadline: IDelayedCall | None = None
        self._loop: Deferred[None] | None = None
        self.renewed_at: float | None = None

    def start(self, written_at: float) -> None:
        """
        Start refreshing a key written (or refreshed) by a request sent at ``written_at``.
        """
        self._arm(written_at)
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(self._crashed)

    def stop(self) -> None:
        """
        Stop refreshing: cancels the request in flight and every timer. Idempotent.
        """
        self._disarm()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()

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
        delay = max(0.0, written_at + self._ttl - self._clock.seconds())
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
                self._loop = None  # ends by itself: nothing to cancel
                self._disarm()
                self.log.warn("{key}: the key is gone", key=self._key)
                self._on_gone("missing")
                return
            except EtcdError as e:
                self.log.warn(
                    "{key}: TTL refresh failed ({error}); retrying in {delay:.2f}s",
                    key=self._key,
                    error=str(e),
                    delay=self._retry,
                )
                delay = self._retry
                continue
            delay = self._interval
            self._arm(sent)
            self._on_refreshed(response.node.modified_index)
