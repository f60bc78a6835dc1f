"""
Service registration: a TTL key kept alive while the service runs, set
again when it expired, deleted on stop.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from txetcd2._logs import PublicLogger
from txetcd2._recipes._shared import (
    check_name,
    check_ttl,
    clock_of,
    giving_up,
    or_let_expire,
)
from txetcd2._wire.fatal import is_fatal
from txetcd2.errors import EtcdError, KeyNotFound, TestFailed

if TYPE_CHECKING:
    from txetcd2.client import EtcdClient


class ServiceRegistration(Service):
    """
    Keeps ``key = value`` in etcd with a TTL while the service runs.

    The key is set with its TTL on start and refreshed (``refresh``, waking
    no watcher) every ``ttl / 3`` seconds. When a refresh finds the key gone
    (it expired during a partition, or someone deleted it) the key is set
    again. When etcd cannot be reached, refreshes are retried every second;
    the key expires ``ttl`` seconds after the last successful one, and comes
    back as soon as etcd answers again. An error retrying cannot fix (the
    client closed, the v2 API disabled, TLS or credentials refused, a member
    of another cluster) ends the registration: it is logged once and kept
    in :attr:`failure`. Stopping deletes the key (if it still has this
    value).

    :param client: the client.
    :param key: the key, e.g. ``"/services/web/10.0.0.7:8080"``.
    :param value: its value.
    :param ttl: seconds the key outlives its last renewal (at least 2).
    :param clock: the clock of every timer (default: the client's reactor).
    :ivar failure: the error that ended the registration, if one did.
    """

    log = PublicLogger(namespace="txetcd2.recipes.ServiceRegistration")

    def __init__(
        self,
        client: EtcdClient,
        key: str,
        value: str,
        *,
        ttl: int = 30,
        clock: IReactorTime | None = None,
    ) -> None:
        self._clock = clock_of(client, clock)
        self._client = client
        key = "/" + check_name(key, "key")
        if not isinstance(value, str):
            raise TypeError(f"value must be a str, not {type(value).__name__}")
        self._key = key
        self._value = value
        self._ttl = check_ttl(ttl)
        self._loop: Deferred[None] | None = None
        self._registered = False
        self.registrations = 0
        self.failure: Failure | None = None

    def __repr__(self) -> str:
        state = (
            "registered"
            if self._registered
            else "failed"
            if self.failure
            else "running"
            if self._loop
            else "stopped"
        )
        return f"<ServiceRegistration {self._key} ttl={self._ttl} {state}>"

    @property
    def key(self) -> str:
        """
        The registered key.
        """
        return self._key

    @property
    def registered(self) -> bool:
        """
        Whether the last set or refresh succeeded.
        """
        return self._registered

    def startService(self) -> None:
        """
        Set the key and keep it alive (does nothing if already running).
        """
        if self._loop is not None:
            return
        super().startService()
        self.failure = None
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(self._crashed)

    def stopService(self) -> Deferred[None]:
        """
        Stop renewing and delete the key if it still has this value (when the
        client cannot, being closed for instance, the key expires by itself).

        :returns: a Deferred firing once the key is deleted and no timer is left.
        """
        super().stopService()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
        return Deferred.fromCoroutine(self._unregister())

    def _crashed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        self.log.failure("registration {key}: the loop crashed", failure, key=self._key)

    async def _run(self) -> None:
        interval = self._ttl / 3.0
        retry = min(1.0, interval)
        missing = True
        while True:
            try:
                if missing:
                    await self._client.set(self._key, self._value, ttl=self._ttl)
                    self.registrations += 1
                    self.log.info("registration {key}: registered", key=self._key)
                else:
                    response = await self._client.refresh(
                        self._key, self._ttl, timeout=max(0.5, interval)
                    )
                    if response.node.value != self._value:
                        self.log.warn(
                            "registration {key}: the key holds another value; setting it",
                            key=self._key,
                        )
                        missing = True
                        continue
            except KeyNotFound:
                self.log.warn("registration {key}: the key expired; setting it", key=self._key)
                self._registered = False
                missing = True
                continue
            except EtcdError as e:
                self._registered = False
                if is_fatal(e):
                    self.failure = giving_up(self.log, "registration", self._key, e)
                    return
                self.log.warn(
                    "registration {key}: {error}; retrying in {delay:.2f}s",
                    key=self._key,
                    error=str(e),
                    delay=retry,
                )
                await deferLater(self._clock, retry)
                continue
            self._registered = True
            missing = False
            await deferLater(self._clock, interval)

    async def _unregister(self) -> None:
        self._registered = False
        deleted = True
        with contextlib.suppress(KeyNotFound, TestFailed):
            deleted = await or_let_expire(
                lambda: self._client.compare_and_delete(self._key, prev_value=self._value),
                self.log,
                "registration",
                self._key,
                self._ttl,
            )
        if deleted:
            self.log.info("registration {key}: unregistered", key=self._key)
