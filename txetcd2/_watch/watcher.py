"""
Watchers: follow every change below a key, without losing or repeating one.

A :class:`Watcher` keeps one ``?stream=true`` answer open (started without
``waitIndex``, so it is never a one-shot) and, while the index it wants is
still in etcd's history, catches up with plain long-polls, holding the
stream's events back until the gap is closed. It resumes after any end of an
answer from the last delivered index, backs off after errors, fails over
across members, notices silence with an idle timer, and reads the tree again
("resync") when etcd lost the history it needed.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import attrs
from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    gatherResults,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from txetcd2._transport.deadline import within
from txetcd2._transport.exchange import describe, read_body
from txetcd2._transport.lines import EventStream, clean_end
from txetcd2._watch.listeners import ACTIONS, Listeners
from txetcd2._wire.answers import RawResponse, error_for, etcd_headers
from txetcd2._wire.errors import (
    EtcdConnectionError,
    EtcdError,
    EtcdProtocolError,
    EtcdTimeout,
    EventIndexCleared,
    KeyNotFound,
)
from txetcd2._wire.keys import (
    Query,
    check_index,
    check_request_line,
    flag,
    key_path,
    normalize_key,
)
from txetcd2._wire.models import DecodeError, EtcdNode, EtcdResponse, decode_event

if TYPE_CHECKING:
    from txetcd2._client import EtcdClient

#: How a stream ended, when it did not fail.
_ENDED = "ended"  # it ended cleanly: reconnect at once
_IDLE = "idle"  # nothing came for idle_timeout: reconnect at once, to another member


@attrs.define
class _Answer:
    """
    What one watch stream (and the polls filling the gap before it) did.
    """

    endpoint: str
    headers: dict[str, str]
    store_index: int
    buffering: bool
    buffer: list[EtcdResponse] = attrs.Factory(list)
    readers: list[EventStream] = attrs.Factory(list)
    events: int = 0
    poll_accepted: bool = False
    idle: bool = False
    quiet: bool = False
    error: EtcdProtocolError | None = None


class _Renew(Exception):
    """
    The idle timer ended the answer: renew the watch.
    """


class Watcher(Listeners, Service):
    """
    Follows every change of a key (or of a whole tree) and hands each one,
    exactly once and in index order, to the callbacks registered with
    :meth:`on`.

    Build it with :meth:`EtcdClient.watcher
    <txetcd2.client.EtcdClient.watcher>`; it does nothing until
    :meth:`start` (or :meth:`startService`, as an
    :class:`~twisted.application.service.IService` under an application).

    :param client: the client whose members, agent and clock are used.
    :param key: the key or directory to watch.
    :param index: the first index to report (default: changes after the
        watcher started).
    :param recursive: watch everything below a directory.
    :param retry_policy: seconds to wait before the ``n``-th retry after
        consecutive failures (default:
        :func:`twisted.application.internet.backoffPolicy`); with several
        members, every member is tried once before each wait.
    :param idle_timeout: seconds without a byte after which the answer is
        abandoned and the watch renewed (etcd sends no heartbeat, and a member
        that lost quorum or dropped a slow reader stays silent).
    :raises TypeError: for arguments of the wrong type.
    :raises ValueError: for a bad key, index or timeout.
    """

    log = Logger()

    def __init__(
        self,
        client: EtcdClient,
        key: str,
        *,
        index: int | None = None,
        recursive: bool = False,
        retry_policy: Callable[[int], float] | None = None,
        idle_timeout: float = 60.0,
    ) -> None:
        self._key = normalize_key(key)
        self._path = key_path(key)
        if index is not None:
            check_index(index, "index")
            if index < 1:
                raise ValueError(f"index must be 1 or more, not {index}")
        self._recursive = flag(recursive, "recursive") == "true"
        if retry_policy is None:
            retry_policy = _DEFAULT_POLICY
        if not callable(retry_policy):
            raise TypeError("retry_policy must be a callable taking an attempt number")
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, int | float):
            raise TypeError(f"idle_timeout must be a number, not {type(idle_timeout).__name__}")
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        self._query: Query = [("wait", "true")]
        if self._recursive:
            self._query.append(("recursive", "true"))
        check_request_line(
            "GET", self._path, [*self._query, ("stream", "true"), ("waitIndex", str(2**63))]
        )
        self._client = client
        self._clock: IReactorTime = client._reactor
        self._exchange = client._exchange
        self._timeout = client._timeout
        self._endpoints = list(client._cluster.endpoints)
        self._position = self._endpoints.index(client._cluster.pinned)
        self._retry_policy = retry_policy
        self._idle_timeout = float(idle_timeout)
        self._listeners: dict[str, list[Callable[[Any], object]]] = {}
        #: the next index wanted; None: "from now"
        self._next: int | None = index
        #: the index of the last change accounted for
        self._index: int | None = index - 1 if index is not None else None
        #: the last X-Etcd-Index seen
        self._store: int | None = None
        self._failures = 0
        self._resync_needed = False
        self._active = False
        self._coroutine: Coroutine[Any, Any, None] | None = None
        self._loop: Deferred[None] | None = None
        self._loop_ended: Deferred[None] | None = None
        self._readers: set[EventStream] = set()
        self._idle: IDelayedCall | None = None
        self._stopping: Deferred[None] | None = None

    def __repr__(self) -> str:
        state = "running" if self._active else "stopped"
        return f"<Watcher {self._key} recursive={self._recursive} index={self._index} {state}>"

    # -- public API ----------------------------------------------------------

    @property
    def key(self) -> str:
        """
        The watched key, in canonical form.
        """
        return self._key

    @property
    def endpoint(self) -> str:
        """
        The member the watcher talks to now (or will talk to next).
        """
        return self._endpoints[self._position]

    @property
    def index(self) -> int | None:
        """
        The index of the last change accounted for: the ``modifiedIndex`` of
        the last delivered event, or the ``etcd_index`` of the last resync
        snapshot; ``None`` before either (``index - 1`` when started at
        ``index``). Watching again from ``index + 1`` misses nothing.
        """
        return self._index

    def start(self) -> None:
        """
        Start watching (does nothing if already started).

        After a :meth:`stop`, starting again resumes after :attr:`index`.
        """
        self.startService()

    def stop(self) -> Deferred[None]:
        """
        Stop watching.

        :returns: a Deferred firing once the request in flight is aborted, no
            timer is pending and no callback will run again (except the
            ``"stop"`` callbacks, called just before it fires).
        """
        return self.stopService()

    def startService(self) -> None:
        """
        Start watching: :class:`~twisted.application.service.IService`'s
        name for :meth:`start`.
        """
        if self._loop is not None:
            return
        super().startService()
        self._active = True
        ended: Deferred[None] = Deferred()
        self._loop_ended = ended
        self._coroutine = self._run()
        loop = self._loop = Deferred.fromCoroutine(self._coroutine)
        loop.addErrback(self._crashed)
        loop.addBoth(lambda _: ended.callback(None))

    def stopService(self) -> Deferred[None]:
        """
        Stop watching: :class:`~twisted.application.service.IService`'s name
        for :meth:`stop`.

        :returns: see :meth:`stop`.
        """
        if self._stopping is not None:
            return _chain(self._stopping)
        if self._loop is None:
            return succeed(None)
        super().stopService()
        self._active = False
        loop, ended = self._loop, self._loop_ended
        assert ended is not None
        waits: list[Deferred[None]] = [ended]
        for reader in list(self._readers):
            waits.append(reader.closed)
            reader.abort()
        self._cancel_idle()
        running = self._coroutine is not None and (
            inspect.getcoroutinestate(self._coroutine) == inspect.CORO_RUNNING
        )
        if not running:
            loop.cancel()
        # else: stop() was called from a callback inside the loop; it sees
        # _active is False and returns at its next step.
        stopping = self._stopping = Deferred()
        gatherResults(waits).addBoth(lambda _: self._stopped(stopping))
        return _chain(stopping)

    # -- the loop ------------------------------------------------------------

    def _stopped(self, stopping: Deferred[None]) -> None:
        self._loop = self._loop_ended = self._coroutine = None
        self._stopping = None
        self.log.info("watch {key} stopped at index {index}", key=self._key, index=self._index)
        self._emit("stop", None)
        stopping.callback(None)

    def _crashed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        self.log.failure("watch {key}: the watcher loop crashed", failure, key=self._key)
        self._emit("error", failure)

    async def _run(self) -> None:
        while self._active:
            if self._resync_needed:
                try:
                    await self._resync()
                except (CancelledError, GeneratorExit):
                    raise
                except Exception as e:
                    await self._back_off(e)
                continue
            endpoint = self._endpoints[self._position]
            try:
                outcome = await self._follow(endpoint)
            except (CancelledError, GeneratorExit):
                raise
            except EventIndexCleared as e:
                self.log.warn(
                    "watch {key}: etcd no longer has index {index} ({error}); reading the tree",
                    key=self._key,
                    index=self._next,
                    error=str(e),
                )
                self._resync_needed = True
                continue
            except Exception as e:
                await self._back_off(e)
                continue
            if not self._active:
                continue
            if outcome == _IDLE and len(self._endpoints) > 1:
                self._position = (self._position + 1) % len(self._endpoints)
            self.log.debug(
                "watch {key} renewed ({outcome}) from {index}",
                key=self._key,
                outcome=outcome,
                index=self._next,
            )
            self._emit("reconnect", 0.0)

    async def _back_off(self, error: Exception) -> None:
        self._failures += 1
        count = len(self._endpoints)
        self._position = (self._position + 1) % count
        sweeps, rest = divmod(self._failures, count)
        delay = float(self._retry_policy(sweeps)) if rest == 0 else 0.0
        failure = Failure(error)
        if isinstance(error, EtcdError) and not isinstance(error, EtcdProtocolError):
            # Expected trouble (a member down, an election): no traceback.
            self.log.warn(
                "watch {key} failed: {error}; reconnect {attempt} in {delay:.2f}s",
                key=self._key,
                error=str(error),
                attempt=self._failures,
                delay=delay,
            )
        else:
            self.log.failure(
                "watch {key} failed; reconnect {attempt} in {delay:.2f}s",
                failure,
                key=self._key,
                attempt=self._failures,
                delay=delay,
            )
        self._emit("error", failure)
        if not self._active:
            return
        self._emit("reconnect", delay)
        if delay > 0 and self._active:
            await deferLater(self._clock, delay)

    async def _resync(self) -> None:
        try:
            snapshot = await self._client.get(
                self._key, recursive=self._recursive, sorted=True, quorum=True
            )
        except KeyNotFound as e:
            snapshot = EtcdResponse(action="get", node=EtcdNode(key=self._key), etcd_index=e.index)
        if snapshot.etcd_index <= 0:
            raise EtcdProtocolError(
                self._endpoints[self._position], 200, "a read without X-Etcd-Index"
            )
        self._resync_needed = False
        self._failures = 0
        self._index = self._store = snapshot.etcd_index
        self._next = snapshot.etcd_index + 1
        self.log.info("watch {key} resync at {index}", key=self._key, index=self._index)
        self._emit("resync", snapshot)

    async def _open(self, endpoint: str, query: Query) -> tuple[IResponse, dict[str, str], int]:
        """
        Send one watch request and wait for its headers.

        :returns: the unread answer, etcd's headers and its ``X-Etcd-Index``.
        :raises Exception: when it failed or etcd answered with an error.
        """
        target = check_request_line("GET", self._path, query)
        opened = within(
            self._exchange.open(endpoint, "GET", target, None), self._timeout, self._clock
        )
        try:
            response = await opened
        except TimeoutError:
            raise EtcdTimeout(endpoint, f"watch {self._key}", self._timeout) from None
        except CancelledError:
            raise
        except Exception as e:
            raise EtcdConnectionError(endpoint, describe(e)) from e
        headers = etcd_headers(response.headers)
        if response.code == 200:
            # A stream can stay open for hours, and thousands of watchers may be open: keep
            # etcd's few headers (above), not the whole parsed set (over 1 KiB each).
            for name, _ in list(response.headers.getAllRawHeaders()):
                response.headers.removeHeader(name)
        else:
            reading = read_body(response).addTimeout(self._timeout, self._clock)
            try:
                body = await reading
            except CancelledError:
                raise
            except Exception as e:
                raise EtcdConnectionError(endpoint, describe(e)) from e
            raise error_for(RawResponse(endpoint, response.code, headers, body))
        try:
            store = int(headers.get("x-etcd-index", ""))
        except ValueError:
            raise EtcdProtocolError(endpoint, 200, "a watch answer without X-Etcd-Index") from None
        return response, headers, store

    def _read(
        self, answer: _Answer, response: IResponse, on_line: Callable[[bytes], None]
    ) -> EventStream:
        """
        Deliver a body, line by line, to ``on_line``; tracked for stop() and the idle timer.
        """
        reader = EventStream(on_line, self._touch)
        answer.readers.append(reader)
        self._readers.add(reader)
        reader.closed.addCallback(lambda _: self._readers.discard(reader))
        response.deliverBody(reader)
        if answer.idle or answer.error is not None:
            # The answer ended while this request was on its way.
            reader.abort()
        return reader

    async def _follow(self, endpoint: str) -> str:
        """
        Stream from one member until the answer ends.

        The stream is opened without ``waitIndex`` (a stream started inside
        history sends one event and then nothing), so it carries every change
        after its ``X-Etcd-Index``. Older changes still wanted are fetched
        with long-polls meanwhile, while the stream's events wait in a buffer.

        :returns: how it ended.
        :raises Exception: why it failed.
        """
        response, headers, store = await self._open(endpoint, [*self._query, ("stream", "true")])
        if self._next is None:
            self._next = store + 1
        answer = _Answer(endpoint, headers, store, buffering=self._next <= store)
        self._idle = self._clock.callLater(self._idle_timeout, self._went_idle, answer)
        try:
            stream = self._read(answer, response, lambda line: self._streamed(answer, line))
            if answer.buffering:
                await self._fill_gap(answer)
                self._next = max(self._next, store + 1)
                answer.buffering = False
                buffered, answer.buffer = answer.buffer, []
                for event in buffered:
                    self._deliver(event)
            await stream.ended
        except _Renew:
            pass
        except BaseException:
            self._abort(answer)
            if answer.error is not None:
                raise answer.error from None
            raise
        finally:
            self._cancel_idle()
        if answer.error is not None:
            self._abort(answer)
            raise answer.error
        if answer.idle:
            if answer.quiet:
                # The stream (and the poll filling the gap, if any) were
                # accepted and saw nothing for idle_timeout: moving past the
                # stream's X-Etcd-Index is safe.
                self._next = max(self._next, store + 1)
            self._failures = 0
            return _IDLE
        reason = stream.reason
        assert reason is not None
        if stream.too_long:
            raise EtcdProtocolError(endpoint, 200, "a watch event line is too long")
        if clean_end(reason):
            self._failures = 0
            return _ENDED
        raise EtcdConnectionError(
            endpoint, f"the watch answer was cut short ({reason.getErrorMessage()})"
        )

    async def _fill_gap(self, answer: _Answer) -> None:
        """
        Deliver the changes from the wanted index up to the stream's
        ``X-Etcd-Index`` with long-polls.

        A poll returns the first change at or after its ``waitIndex``; one
        past the stream's index means the gap is closed (that change is in
        the stream too and is not delivered twice). While the stream has a
        buffered event, the poll cannot stay pending: it gets that event or
        an older one.
        """
        assert self._next is not None
        wanted = self._next
        while wanted <= answer.store_index and self._active:
            response, headers, _ = await self._open(
                answer.endpoint, [*self._query, ("waitIndex", str(wanted))]
            )
            lines: list[bytes] = []
            answer.poll_accepted = True
            poll = self._read(answer, response, lines.append)
            await poll.ended
            answer.poll_accepted = False
            if answer.idle:
                raise _Renew()
            if answer.error is not None:
                raise answer.error
            reason = poll.reason
            assert reason is not None
            if not clean_end(reason) or poll.too_long:
                raise EtcdConnectionError(
                    answer.endpoint,
                    f"a watch long-poll was cut short ({reason.getErrorMessage()})",
                )
            if not lines:
                continue
            event = self._decode(answer.endpoint, headers, lines[0])
            self._deliver(event)
            wanted = event.index + 1

    def _decode(self, endpoint: str, headers: dict[str, str], line: bytes) -> EtcdResponse:
        try:
            return decode_event(json.loads(line), headers)
        except (ValueError, DecodeError) as e:
            raise EtcdProtocolError(
                endpoint, 200, f"a malformed watch event ({e}); resuming", line
            ) from None

    def _streamed(self, answer: _Answer, line: bytes) -> None:
        if not self._active:
            self._abort(answer)
            return
        try:
            event = self._decode(answer.endpoint, answer.headers, line)
        except EtcdProtocolError as e:
            answer.error = e
            self._abort(answer)
            return
        answer.events += 1
        if answer.buffering:
            answer.buffer.append(event)
        else:
            self._deliver(event)

    def _abort(self, answer: _Answer) -> None:
        for reader in answer.readers:
            reader.abort()

    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self._idle_timeout)

    def _went_idle(self, answer: _Answer) -> None:
        self._idle = None
        answer.idle = True
        answer.quiet = answer.events == 0 and (not answer.buffering or answer.poll_accepted)
        self.log.info(
            "watch {key}: nothing from {endpoint} for {seconds}s; renewing",
            key=self._key,
            endpoint=answer.endpoint,
            seconds=self._idle_timeout,
        )
        self._abort(answer)

    def _cancel_idle(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def _deliver(self, event: EtcdResponse) -> None:
        if not self._active:
            return
        if self._index is not None and event.index <= self._index:
            self.log.debug(
                "watch {key}: skipped {index}, already delivered", key=self._key, index=event.index
            )
            return
        self._index = event.index
        self._next = event.index + 1
        self._failures = 0
        self._emit("change", event)
        if event.action in ACTIONS:
            self._emit(event.action, event)


#: The default retry policy: stateless, so every watcher shares it.
_DEFAULT_POLICY = backoffPolicy()


def _chain(d: Deferred[None]) -> Deferred[None]:
    """
    A new Deferred firing when ``d`` does, leaving ``d``'s result alone.
    """
    result: Deferred[None] = Deferred()

    def fire(outcome: object) -> object:
        result.callback(None)
        return outcome

    d.addBoth(fire)
    return result
