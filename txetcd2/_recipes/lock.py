"""
A fair distributed lock: FIFO by in-order keys under one directory, with a
fencing token, TTL renewal and a ``lost`` signal.
"""

from __future__ import annotations

import contextlib
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from txetcd2._logs import PublicLogger
from txetcd2._recipes._keepalive import KeepAlive
from txetcd2._recipes._shared import (
    check_name,
    check_prefix,
    check_seconds,
    check_ttl,
    clock_of,
    delete_if_ours,
    transient,
)
from txetcd2.errors import (
    DirNotEmpty,
    EtcdError,
    EtcdOutcomeUnknown,
    EventIndexCleared,
    KeyNotFound,
)
from txetcd2.models import EtcdNode, EtcdResponse

if TYPE_CHECKING:
    from txetcd2.client import EtcdClient

#: Where locks keep their queues, unless told otherwise.
LOCK_PREFIX = "/_txetcd2/locks"


@attrs.frozen(auto_exc=True, eq=False)
class LockNotAcquired(EtcdError):
    """
    A lock was not acquired: held by someone else (non-blocking try), or not
    within the timeout. No key of the attempt is left behind.

    :ivar name: the lock's directory.
    :ivar reason: what happened.
    """

    name: str
    reason: str

    def __str__(self) -> str:
        return (
            f"lock {self.name} not acquired: {self.reason}. Try again later, or wait "
            "longer (a larger timeout, or blocking=True)"
        )


@attrs.define
class _Place:
    """
    One place in the queue: the in-order key this attempt created.
    """

    key: str
    created: int
    modified: int


def _sequence(node: EtcdNode) -> int:
    """
    The position of an in-order key: its created index (never its name's
    text, so 20-digit names and any padding sort right).
    """
    return node.created_index


class Lock:
    """
    A fair (first come, first served) lock shared through etcd.

    Each attempt appends an in-order key (whose value is a token unique to
    the attempt) under ``<prefix>/<name>``; the attempt with the oldest key
    holds the lock, every other one watches only the key just before its own.
    Keys carry a TTL renewed with ``refresh`` (waking no watcher), so a
    crashed holder or waiter frees its place within ``ttl`` seconds.

    :param client: the client.
    :param name: the lock's name (key segments, e.g. ``"jobs/nightly"``).
    :param ttl: seconds a key outlives its last renewal (at least 2).
    :param prefix: the directory holding every lock's queue.
    :param clock: the clock of every timer (default: the client's reactor).
    :raises TypeError: for arguments of the wrong type.
    :raises ValueError: for a bad name, prefix or TTL.
    """

    log = PublicLogger(namespace="txetcd2.recipes.Lock")

    def __init__(
        self,
        client: EtcdClient,
        name: str,
        *,
        ttl: int = 30,
        prefix: str = LOCK_PREFIX,
        clock: IReactorTime | None = None,
    ) -> None:
        self._clock = clock_of(client, clock)
        self._client = client
        self._dir = f"{check_prefix(prefix)}/{check_name(name)}"
        self._ttl = check_ttl(ttl)
        self._owner = ""
        self._place: _Place | None = None
        self._keepalive: KeepAlive | None = None
        self._attempt: Deferred[int] | None = None
        self._held = False
        self._token: int | None = None
        self._lost: Deferred[str] = Deferred()
        self._enqueued_at = 0.0
        self._appending = False

    def __repr__(self) -> str:
        state = "held" if self._held else "acquiring" if self._attempt else "free"
        return f"<Lock {self._dir} {state} token={self._token}>"

    # -- public API ----------------------------------------------------------

    @property
    def key(self) -> str:
        """
        The directory holding this lock's queue.
        """
        return self._dir

    @property
    def held(self) -> bool:
        """
        Whether this object holds the lock (as far as it can be sure).
        """
        return self._held

    @property
    def token(self) -> int | None:
        """
        The fencing token of the current (or last) holding, ``None`` before any.
        """
        return self._token

    @property
    def lost(self) -> Deferred[str]:
        """
        Fires (with ``"missing"`` or ``"expired"``) if the lock is lost
        while held: its key disappeared, or no renewal succeeded for ``ttl``
        seconds (``"expired"`` at once when a renewal failed with an error
        retrying cannot fix, such as a closed client or refused
        credentials). A new Deferred is made at each acquisition; it never
        fires after :meth:`release`.
        """
        return self._lost

    def acquire(self, timeout: float | None = None, blocking: bool = True) -> Deferred[int]:
        """
        Take the lock.

        :param timeout: seconds to wait at most (default: no limit).
        :param blocking: ``False`` fails at once if someone else holds it or
            waits before us.
        :returns: a Deferred firing with the fencing token: the index etcd
            gave this holder's key, strictly increasing across holders.
            Cancelling it gives up (and deletes the key).
        :raises LockNotAcquired: (in the Deferred) for a failed non-blocking
            try or a timeout.
        :raises RuntimeError: if this object holds or is acquiring the lock.
        """
        if timeout is not None:
            check_seconds(timeout, "timeout")
        if not isinstance(blocking, bool):
            raise TypeError(f"blocking must be a bool, not {type(blocking).__name__}")
        if self._held or self._attempt is not None:
            raise RuntimeError(
                f"{self!r} is held or being acquired; use one Lock object per concurrent holder"
            )
        attempt = self._attempt = Deferred.fromCoroutine(self._acquire(blocking))
        if timeout is not None:
            attempt.addTimeout(timeout, self._clock, self._timed_out(timeout))

        def done(result: object) -> object:
            self._attempt = None
            return result

        attempt.addBoth(done)
        return attempt

    def release(self) -> Deferred[None]:
        """
        Give the lock up: stop renewing and delete the key (only if it is
        still this holder's). Does nothing if the lock is not held.

        :returns: a Deferred firing once the key is deleted.
        """
        return Deferred.fromCoroutine(self._release())

    async def __aenter__(self) -> int:
        return await self.acquire()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.release()

    # -- acquiring -----------------------------------------------------------

    def _timed_out(self, timeout: float) -> Any:
        def convert(result: object, seconds: float) -> object:
            raise LockNotAcquired(self._dir, f"not acquired within {timeout}s")

        return convert

    async def _acquire(self, blocking: bool) -> int:
        self._owner = uuid.uuid4().hex
        self._appending = False
        try:
            while True:
                if self._place is None:
                    self._place = await self._enqueue()
                    self._keepalive = KeepAlive(
                        self._client,
                        self._clock,
                        self._place.key,
                        self._ttl,
                        self._gone,
                        self._refreshed,
                        created_index=self._place.created,
                    )
                    self._keepalive.start(self._enqueued_at)
                first = await self._wait_turn(blocking)
                if first:
                    return self._acquired()
        except GeneratorExit:
            raise
        except BaseException as e:
            if isinstance(e, CancelledError):
                self.log.info("lock {name}: acquire cancelled", name=self._dir)
            await self._give_up()
            raise

    async def _enqueue(self) -> _Place:
        """
        Append this attempt's key; when the outcome is unknown, look for it by
        its value (the owner token) and append again only if it is not there.
        """
        self._enqueued_at = self._clock.seconds()  # the TTL runs from the first append at most
        while True:
            self._appending = True
            try:
                response = await self._client.append(self._dir, self._owner, ttl=self._ttl)
            except EtcdOutcomeUnknown as e:
                self.log.warn(
                    "lock {name}: append outcome unknown ({error}); looking for it",
                    name=self._dir,
                    error=str(e),
                )
                queue = await self._read_queue()
                mine = [n for n in queue.node.nodes if n.value == self._owner]
                if not mine:
                    continue
                node = min(mine, key=_sequence)
            except EtcdError as e:
                if not transient(e):
                    raise
                await self._pause(e)  # not sent (the client says so): append again
                continue
            else:
                node = response.node
            self._appending = False
            self.log.debug("lock {name}: queued as {key}", name=self._dir, key=node.key)
            return _Place(node.key, node.created_index, node.modified_index)

    async def _queue(self) -> EtcdResponse:
        try:
            return await self._client.get(self._dir, sorted=True, quorum=True)
        except KeyNotFound as e:
            return EtcdResponse("get", EtcdNode(key=self._dir, dir=True), etcd_index=e.index)

    async def _read_queue(self) -> EtcdResponse:
        """
        Read the queue, retrying every second while etcd cannot answer.
        """
        while True:
            try:
                return await self._queue()
            except EtcdError as e:
                if not transient(e):
                    raise
                await self._pause(e)

    async def _wait_turn(self, blocking: bool) -> bool:
        """
        Read the queue once; return whether this attempt is first, or wait
        until the key before it changes.

        :returns: ``True`` when first; ``False`` to read again.
        """
        place = self._place
        assert place is not None
        queue = await self._read_queue()
        keys = sorted((n for n in queue.node.nodes if not n.dir), key=_sequence)
        strays = [n for n in keys if n.value == self._owner and n.key != place.key]
        for stray in strays:
            # A key of ours whose append looked failed but was applied after all.
            self.log.info("lock {name}: deleting stray key {key}", name=self._dir, key=stray.key)
            try:
                await delete_if_ours(
                    self._client, stray.key, stray.created_index, stray.modified_index
                )
            except EtcdError as e:
                if not transient(e):
                    raise
                await self._pause(e)
        if strays:
            return False
        before = [n for n in keys if n.created_index < place.created]
        if not any(n.key == place.key for n in keys):
            self.log.warn(
                "lock {name}: our key {key} is gone; queueing again", name=self._dir, key=place.key
            )
            self._forget()
            return False
        if not before:
            return True
        if not blocking:
            raise LockNotAcquired(self._dir, f"held by another client ({before[0].key})")
        predecessor = before[-1]
        watching = self._client.watch(predecessor.key, index=queue.etcd_index + 1)
        # A member cut off from its cluster keeps a watch silent: read the
        # queue again at least every ttl seconds.
        watching.addTimeout(self._ttl, self._clock)
        try:
            await watching
        except (EventIndexCleared, TimeoutError):
            pass  # history lost, or nothing for a while: read the queue again
        except EtcdError as e:
            if not transient(e):
                raise
            await self._pause(e)
        return False

    async def _pause(self, error: EtcdError) -> None:
        self.log.warn("lock {name}: {error}; trying again in 1s", name=self._dir, error=str(error))
        await deferLater(self._clock, 1.0)

    def _acquired(self) -> int:
        place = self._place
        assert place is not None
        self._held = True
        self._token = place.created
        self._lost = Deferred()
        self.log.info("lock {name} acquired, token {token}", name=self._dir, token=self._token)
        return place.created

    def _forget(self) -> None:
        if self._keepalive is not None:
            self._keepalive.stop()
        self._keepalive = None
        self._place = None

    def _refreshed(self, modified: int) -> None:
        if self._place is not None:
            self._place.modified = modified

    def _gone(self, why: str) -> None:
        place = self._place
        self._forget()
        if not self._held:
            return  # a waiter: the next read of the queue queues again
        self._held = False
        self.log.warn("lock {name} lost ({why})", name=self._dir, why=why)
        if place is not None and why != "missing":
            # Tidy up, in case the key outlived the renewals after all.
            deleting = Deferred.fromCoroutine(self._delete(place))
            deleting.addErrback(
                lambda f: self.log.warn(
                    "lock {name}: could not delete {key} ({error}); it expires within {ttl}s",
                    name=self._dir,
                    key=place.key,
                    error=f.getErrorMessage(),
                    ttl=self._ttl,
                )
            )
        self._lost.callback(why)

    async def _give_up(self) -> None:
        place = self._place
        self._forget()
        cleaning = Deferred.fromCoroutine(self._clean(place))
        cleaning.addTimeout(min(self._ttl, 10), self._clock)
        try:
            await cleaning
        except Exception as e:
            self.log.warn(
                "lock {name}: could not delete the attempt's key ({error}); "
                "it expires within {ttl}s",
                name=self._dir,
                error=str(e) or type(e).__name__,
                ttl=self._ttl,
            )

    async def _clean(self, place: _Place | None) -> None:
        if place is not None:
            await self._delete(place)
        elif self._appending:
            # Given up while the append was in flight: it may have been applied.
            for node in (await self._queue()).node.nodes:
                if node.value == self._owner:
                    await delete_if_ours(
                        self._client, node.key, node.created_index, node.modified_index
                    )

    async def _delete(self, place: _Place) -> None:
        await delete_if_ours(self._client, place.key, place.created, place.modified)

    # -- releasing -----------------------------------------------------------

    async def _release(self) -> None:
        if self._attempt is not None:
            attempt = self._attempt
            attempt.cancel()
            with contextlib.suppress(Exception):
                await attempt
            return
        place = self._place
        if not self._held or place is None:
            return
        self._held = False
        self._forget()
        await self._delete(place)
        self.log.info("lock {name} released, token {token}", name=self._dir, token=self._token)
        await self._remove_empty_queue()

    async def _remove_empty_queue(self) -> None:
        """
        Remove the queue's directory if nobody waits (etcd keeps empty
        directories). Safe against a concurrent append: raft orders the two,
        and an append after the removal creates the directory again.
        """
        try:
            await self._client.rmdir(self._dir)
        except (DirNotEmpty, KeyNotFound):
            pass
        except EtcdError as e:
            self.log.info(
                "lock {name}: the empty queue stays ({error})", name=self._dir, error=str(e)
            )
