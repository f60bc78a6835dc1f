"""
Watchers: follow every change below a key, without losing or repeating one.

A :class:`Watcher` keeps one ``?stream=true`` answer open (started without
``waitIndex``, so it is never a one-shot) and, while the index it wants is
still in etcd's history, catches up with plain long-polls, holding the
stream's events back until the gap is closed. It resumes after any end of an
answer from the last delivered index, backs off after errors, fails over
across members, checks a quiet stream with a probe (and, as a last resort,
an idle timer), reads the tree again ("resync") when etcd lost the history
it needed, and stops on errors that retrying cannot fix.

Its only way to the wire is a :class:`~txetcd2._watch.source.WatchSource`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from txetcd2._logs import PublicLogger
from txetcd2._transport.deadline import follow
from txetcd2._transport.lines import EventStream, clean_end
from txetcd2._watch.lag import BUSY, DROPPED, HISTORY_LOST, BusyMeter, Lag
from txetcd2._watch.listeners import ACTIONS
from txetcd2._watch.probe import Blocked, Failed, Found, Outcome, Probe
from txetcd2._watch.source import as_source
from txetcd2._watch.states import Halted, Lifecycle, State
from txetcd2._wire.errors import (
    EtcdConnectionError,
    EtcdError,
    EtcdProtocolError,
    EventIndexCleared,
)
from txetcd2._wire.fatal import is_fatal
from txetcd2._wire.keys import (
    Query,
    check_index,
    check_request_line,
    flag,
    hidden_below,
    key_path,
    normalize_key,
)
from txetcd2._wire.models import DecodeError, EtcdResponse, decode_event

_T = TypeVar("_T")

#: The query of every watch request, without and with ``recursive``.
_PLAIN = (("wait", "true"),)
_RECURSIVE = (("wait", "true"), ("recursive", "true"))

#: How a stream ended, when it did not fail.
_ENDED = "the stream ended"  # cleanly: reconnect at once
_IDLE = "idle"  # nothing came for idle_timeout: reconnect at once, to another member
_BEHIND = "the stream fell behind"  # a probe found a missed event: reconnect at once

#: Seconds of quiet before a probe while the callbacks are saturated (etcd
#: has probably dropped the stream).
PROBE_SOON = 0.5

#: Probes wait up to this share longer, at random, so that watchers started
#: together do not probe together.
PROBE_JITTER = 0.2

#: The random numbers (0 to 1) of the jitter; tests pin them.
jitter: Callable[[], float] = random.random

#: Seconds a probe's body may take after its headers before the probe is
#: taken as blocked (etcd writes an event it has right after the headers;
#: generous, because a blocked probe moves the resume index).
PROBE_GRACE = 1.0


@attrs.define(eq=False)
class _Answer:
    """
    What one watch stream (and the polls filling the gap before it) did.
    """

    watcher: Watcher
    endpoint: str
    headers: Mapping[str, str]
    store_index: int
    buffering: bool
    #: the stream's events held back while buffering (made at the first one)
    buffer: list[EtcdResponse] | None = None
    readers: list[EventStream] = attrs.Factory(list)
    events: int = 0
    poll_accepted: bool = False
    idle: bool = False
    quiet: bool = False
    behind: bool = False
    error: Exception | None = None
    probe: Probe | None = None
    probe_timer: IDelayedCall | None = None
    #: probes in a row that found nothing missed, since the last event
    probe_round: int = 0

    @property
    def over(self) -> bool:
        return self.idle or self.behind or self.error is not None

    # Bound methods of the answer rather than closures over it: smaller, and
    # every idle watcher holds them.

    def touched(self) -> None:
        """Bytes came: the idle timer (and the probe's) start again."""
        self.watcher._touch(self)

    def streamed(self, line: bytes) -> None:
        """A line of the stream came."""
        self.watcher._streamed(self, line)

    def went_idle(self) -> None:
        """Nothing came for ``idle_timeout``."""
        self.watcher._went_idle(self)


class _Renew(Exception):
    """
    The idle timer (or a probe) ended the answer: renew the watch.
    """


def _check_seconds(value: object, name: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, not {value}")
    return float(value)


class Watcher(Lifecycle):
    """
    Follows every change of a key (or of a whole tree) and hands each one,
    exactly once and in index order, to the callbacks registered with
    :meth:`on`.

    Build it with :meth:`EtcdClient.watcher
    <txetcd2.client.EtcdClient.watcher>`; it does nothing until
    :meth:`start` (or :meth:`startService`, as an
    :class:`~twisted.application.service.IService` under an application).
    :attr:`state` says what it does (a :class:`~txetcd2.watch.State`).

    **Errors.** Trouble that passes (a member down or paused, a timeout, an
    election, an answer etcd would never send) is reported to the
    ``"error"`` callbacks and retried: every member once, then after a
    back-off (``retry_policy``). Errors that retrying cannot fix (the v2 API
    disabled, a TLS verification failure, rejected credentials, a member of
    another cluster, a closed client) are reported to ``"error"``, then the
    watcher stops: its ``"stop"`` callbacks get the failure, :attr:`state`
    becomes ``FAILED`` and :attr:`failure` keeps it.

    **Slow consumers.** Callbacks run on the reactor, one event at a time:
    while they are slower than the writes, the stream's bytes wait in the
    socket buffers (TCP backpressure), then in etcd's per-watcher queue
    (about 100 events); when that overflows etcd drops the watcher without
    closing the stream, which goes quiet. After ``probe_interval`` seconds of
    quiet the watcher sends a probe (a one-shot long-poll at the next wanted
    index): etcd answers it at once from its history, so the watcher
    reconnects to catch up with long-polls, or with a resync if it fell more
    than etcd's 1000-event history behind. A slow consumer is visible before
    that: when the callbacks take nearly all the reactor's time (90 % over a
    second), the watcher reports ``"lagging"`` with a
    :class:`~txetcd2.watch.Lag` whose ``reason`` is ``"busy"``, and probes
    after half a second of quiet instead of ``probe_interval``; it reports
    ``"lagging"`` again (``"dropped"``, with how many indexes it was behind)
    when the probe finds the stream dropped, and ``"history lost"`` whenever
    etcd no longer holds the events it needs (found by the probe, by a
    reconnection, or because the ``index`` it started from is too old),
    just before the resync. Each report is counted in :attr:`lagged`. Make
    callbacks fast (hand slow work to a queue or a thread) when ``"busy"``
    shows up.

    **Cost of the probe.** Only a stream that carried events is probed
    (etcd drops a reader only when its events pile up): an idle watcher
    costs nothing more than before (the renewal of its stream every
    ``idle_timeout``). After events, a short request (held for a second,
    on a connection of its own) after ``probe_interval`` seconds of quiet (up
    to 20 % more, at random, so that watchers spread out), then after twice
    as long each time it found nothing missed (up to 8 times
    ``probe_interval``, and ``idle_timeout``): with the defaults, at most 3
    probes in the quiet minute after a change. When a probe blocks, its
    ``X-Etcd-Index`` lets the watcher resume after that index, so a key that
    went quiet does not fall out of etcd's history. A
    :class:`~txetcd2.watch.WatchHub` pays it once for all its local watchers.

    :param client: the :class:`~txetcd2.EtcdClient` (or a
        :class:`~txetcd2._watch.source.WatchSource`) whose members, agent
        and clock are used.
    :param key: the key or directory to watch.
    :param index: the first index to report (default: changes after the
        watcher started).
    :param recursive: watch everything below a directory, except hidden keys
        (a segment below ``key`` starting with ``_``), which etcd leaves out
        of recursive watches; they are passed over even when etcd answers
        from its history, which includes them. Watch a hidden key by its name.
    :param retry_policy: seconds to wait before the ``n``-th retry after
        consecutive failures (default:
        :func:`twisted.application.internet.backoffPolicy`); with several
        members, every member is tried once before each wait.
    :param idle_timeout: seconds without a byte after which the answer is
        abandoned and the watch renewed on the next member (a last resort:
        etcd sends no heartbeat).
    :param probe_interval: seconds of a quiet stream after which a probe
        checks that nothing was missed; ``None`` turns the probe off.
    :ivar lagged: how many times ``"lagging"`` was reported.
    :ivar probes: how many probes were sent.
    :raises TypeError: for arguments of the wrong type.
    :raises ValueError: for a bad key, index or timeout.
    """

    log = PublicLogger(namespace="txetcd2.watch.Watcher")

    def __init__(
        self,
        client: Any,
        key: str,
        *,
        index: int | None = None,
        recursive: bool = False,
        retry_policy: Callable[[int], float] | None = None,
        idle_timeout: float = 60.0,
        probe_interval: float | None = 5.0,
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
        idle = _check_seconds(idle_timeout, "idle_timeout")
        assert idle is not None
        self._idle_timeout = idle
        self._probe_interval = _check_seconds(probe_interval, "probe_interval", optional=True)
        # Shared tuples: idle watchers are many.
        self._query: tuple[tuple[str, str], ...] = _RECURSIVE if self._recursive else _PLAIN
        check_request_line(
            "GET", self._path, [*self._query, ("stream", "true"), ("waitIndex", str(2**63))]
        )
        self._source = as_source(client)
        self._clock = self._source.clock
        self._retry_policy = retry_policy
        self._listeners: dict[str, list[Callable[[Any], object]]] | None = None
        self._endpoint: str | None = None
        #: the next index wanted; None: "from now"
        self._next: int | None = index
        #: the index of the last change accounted for
        self._index: int | None = index - 1 if index is not None else None
        self._failures = 0
        self._resync_needed = False
        self._loop_ended: Deferred[None] | None = None
        self._waiting: Deferred[Any] | None = None
        #: the readers of answers, for stop(): those whose connection is gone
        #: are dropped when the next one comes (no callback per reader)
        self._readers: list[EventStream] = []
        self._answer: _Answer | None = None
        self._idle: IDelayedCall | None = None
        #: made at the first change (idle watchers are many and never need one)
        self._meter: BusyMeter | None = None
        self.lagged = 0
        self.probes = 0

    def __repr__(self) -> str:
        return (
            f"<Watcher {self._key} recursive={self._recursive} index={self._index} "
            f"{self._state.value}>"
        )

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
        if self._endpoint is not None:
            return self._endpoint
        return self._source.endpoints()[0]

    @property
    def index(self) -> int | None:
        """
        The index of the last change accounted for: the ``modifiedIndex`` of
        the last delivered event, or the ``etcd_index`` of the last resync
        snapshot; ``None`` before either (``index - 1`` when started at
        ``index``). Watching again from ``index + 1`` misses nothing.
        """
        return self._index

    # -- the lifecycle ---------------------------------------------------------

    def _begin(self) -> None:
        self._enter(State.CONNECTING)
        self._source.track(self)
        # The loop's Deferred fires with None (its errback handles failures);
        # what waits for it is made only when stopping (idle watchers are many).
        self._loop_ended = Deferred.fromCoroutine(self._run())

    def _halt(self) -> Deferred[object]:
        waits: list[Deferred[Any]] = []
        if self._loop_ended is not None:
            waits.append(follow(self._loop_ended))
        answer = self._answer
        if answer is not None:
            probe = self._end_probe(answer)
            if probe is not None:
                waits.append(probe.closed)
        for reader in self._readers:
            if not reader.gone:
                waits.append(reader.closed)
                reader.abort()
        self._readers = []
        self._cancel_idle()
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.cancel()
        # else: the loop runs now (stop() came from one of its callbacks); it
        # stops at its next step.
        done: Deferred[object] = gatherResults(waits).addBoth(lambda _: None)
        return done

    def _ended(self, failure: Failure | None) -> None:
        self._loop_ended = None
        self._source.untrack(self)
        where = "before its first change" if self._index is None else f"at index {self._index}"
        if failure is None:
            self.log.info("watch {key} stopped {where}", key=self._key, where=where)
        else:
            self.log.error(
                "watch {key} gave up {where}: {error}",
                key=self._key,
                where=where,
                error=failure.getErrorMessage(),
                failure=failure,
            )

    def _crashed(self, failure: Failure) -> None:
        if failure.check(CancelledError, Halted):
            return
        self.log.failure("watch {key}: the watcher loop crashed", failure, key=self._key)
        self._give_up(failure)

    # -- the loop ------------------------------------------------------------

    def _wait(self, d: Deferred[_T]) -> Deferred[_T]:
        """
        Mark ``d`` as what the loop awaits now, so that a stop cancels it
        (unless it fired already: then the loop runs, and stops at its next
        step).

        A plain function, not a coroutine: every running watcher holds its
        loop's frames, and idle watchers are many.

        :raises Halted: when stopping.
        """
        if self._state is State.STOPPING:
            d.cancel()
            raise Halted()
        self._waiting = d
        return d

    async def _run(self) -> None:
        # A crash is handled here rather than by an errback on the loop's
        # Deferred: one callback less per watcher.
        try:
            while True:
                try:
                    self._source.check_open()
                    if self._resync_needed:
                        self._enter(State.RESYNCING)
                        await self._resync()
                    else:
                        self._renewed(await self._follow(self._current()))
                except (Halted, CancelledError):
                    if self._state is State.STOPPING:
                        return
                    raise
                except EventIndexCleared as e:
                    # One line: the lagging report says what happened and what comes.
                    behind = None if self._index is None else max(e.index - self._index, 0)
                    self._lagging(None, Lag(HISTORY_LOST, behind))
                    self._resync_needed = True
                except Exception as e:
                    if is_fatal(e):
                        self._give_up(Failure(e))
                        return
                    try:
                        await self._back_off(e)
                    except (Halted, CancelledError):
                        if self._state is State.STOPPING:
                            return
                        raise
        except Exception:
            self._crashed(Failure())

    def _current(self) -> str:
        endpoints = self._source.endpoints()
        endpoint = self._endpoint
        if endpoint is None or endpoint not in endpoints:
            endpoint = self._endpoint = endpoints[0]
        return endpoint

    def _move_on(self) -> str:
        endpoints = list(self._source.endpoints())
        at = endpoints.index(self._endpoint) if self._endpoint in endpoints else -1
        self._endpoint = endpoints[(at + 1) % len(endpoints)]
        return self._endpoint

    def _renewed(self, outcome: str) -> None:
        left = self._endpoint
        if outcome == _IDLE and len(self._source.endpoints()) > 1:
            self._move_on()
        self._enter(State.CONNECTING)
        if outcome == _IDLE:
            outcome = f"nothing came for {self._idle_timeout:.2f}s"
        self.log.info(
            "watch {key}: {outcome} at {endpoint}; reconnecting to {next} at once "
            "from index {index}",
            key=self._key,
            outcome=outcome,
            endpoint=left,
            next=self._endpoint,
            index=self._next,
        )
        self._emit("reconnect", 0.0)

    async def _back_off(self, error: Exception) -> None:
        self._failures += 1
        failed_at = self._endpoint
        count = len(self._source.endpoints())
        retry_at = self._move_on()
        sweeps, rest = divmod(self._failures, count)
        delay = float(self._retry_policy(sweeps)) if rest == 0 else 0.0
        failure = Failure(error)
        fields: dict[str, object] = dict(
            key=self._key,
            error=str(error),
            endpoint=failed_at,
            next=retry_at,
            attempt=self._failures,
            delay=delay,
        )
        text = (
            "watch {key} failed at {endpoint}: {error}; reconnecting to {next} "
            "in {delay:.2f}s (attempt {attempt})"
        )
        if isinstance(error, EtcdError) and not isinstance(error, EtcdProtocolError):
            # Expected trouble (a member down, an election): no traceback.
            self.log.warn(text, failure=failure, **fields)
        else:
            self.log.failure(text, failure, LogLevel.error, **fields)
        self._emit("error", failure)
        self._enter(State.WAITING)
        self._emit("reconnect", delay)
        if delay > 0:
            await self._wait(deferLater(self._clock, delay))
        self._enter(State.CONNECTING)

    async def _resync(self) -> None:
        endpoint = self.endpoint
        snapshot: EtcdResponse = await self._wait(
            self._source.snapshot(self._key, self._recursive)
        )
        if snapshot.etcd_index <= 0:
            raise EtcdProtocolError(endpoint, 200, "a read without X-Etcd-Index")
        self._resync_needed = False
        self._failures = 0
        self._index = snapshot.etcd_index
        self._next = snapshot.etcd_index + 1
        self.log.info("watch {key} resync at {index}", key=self._key, index=self._index)
        self._enter(State.CONNECTING)
        self._emit("resync", snapshot)

    async def _open(self, endpoint: str, query: Query) -> tuple[IResponse, Mapping[str, str], int]:
        """
        Send one watch request and wait for its headers.

        :returns: the unread answer, etcd's headers and its ``X-Etcd-Index``.
        :raises Exception: when it failed or etcd answered with an error.
        """
        target = check_request_line("GET", self._path, query)
        opening = self._source.open(endpoint, target, self._source.timeout)
        response, headers = await self._wait(opening)
        return response, headers, int(headers["x-etcd-index"])

    def _read(
        self, answer: _Answer, response: IResponse, on_line: Callable[[bytes], None]
    ) -> EventStream:
        """
        Deliver a body, line by line, to ``on_line``; tracked for stop() and the idle timer.
        """
        reader = EventStream(on_line, answer.touched)
        answer.readers.append(reader)
        self._readers = [r for r in self._readers if not r.gone]
        self._readers.append(reader)
        response.deliverBody(reader)
        if answer.over or self._state is State.STOPPING:
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
        answer = self._answer = _Answer(
            self, endpoint, headers, store, buffering=self._next <= store
        )
        self._idle = self._clock.callLater(self._idle_timeout, answer.went_idle)
        try:
            stream = self._read(answer, response, answer.streamed)
            del response  # the reader holds what it needs; the frame stays for hours
            if answer.buffering:
                self._enter(State.CATCHING_UP)
                await self._fill_gap(answer)
                self._next = max(self._next, store + 1)
                answer.buffering = False
                buffered, answer.buffer = answer.buffer, None
                for event in buffered or ():
                    self._deliver(event)
            self._enter(State.STREAMING)
            self._arm_probe(answer)
            await self._wait(stream.ended)
        except _Renew:
            pass
        except BaseException:
            self._abort(answer)
            if answer.error is not None:
                raise answer.error from None
            raise
        finally:
            self._end_probe(answer)
            self._cancel_idle()
            self._answer = None
        return self._outcome(answer, stream)

    def _outcome(self, answer: _Answer, stream: EventStream) -> str:
        if answer.error is not None:
            self._abort(answer)
            raise answer.error
        if answer.behind:
            return _BEHIND
        if answer.idle:
            if answer.quiet:
                # The stream (and the poll filling the gap, if any) were
                # accepted and saw nothing for idle_timeout: moving past the
                # stream's X-Etcd-Index is safe.
                assert self._next is not None
                self._next = max(self._next, answer.store_index + 1)
            self._failures = 0
            return _IDLE
        reason = stream.reason
        assert reason is not None
        if stream.too_long:
            raise EtcdProtocolError(answer.endpoint, 200, "a watch event line is too long")
        if clean_end(reason):
            self._failures = 0
            return _ENDED
        raise EtcdConnectionError(
            answer.endpoint, f"the watch answer was cut short ({reason.getErrorMessage()})"
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
        while wanted <= answer.store_index:
            response, headers, _ = await self._open(
                answer.endpoint, [*self._query, ("waitIndex", str(wanted))]
            )
            lines: list[bytes] = []
            answer.poll_accepted = True
            poll = self._read(answer, response, lines.append)
            await self._wait(poll.ended)
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

    def _decode(self, endpoint: str, headers: Mapping[str, str], line: bytes) -> EtcdResponse:
        try:
            return decode_event(json.loads(line), headers)
        except (ValueError, DecodeError) as e:
            raise EtcdProtocolError(
                endpoint, 200, f"a malformed watch event ({e}); resuming", line
            ) from None

    def _streamed(self, answer: _Answer, line: bytes) -> None:
        if not self._live():
            self._abort(answer)
            return
        try:
            event = self._decode(answer.endpoint, answer.headers, line)
        except EtcdProtocolError as e:
            answer.error = e
            self._abort(answer)
            return
        answer.events += 1
        answer.probe_round = 0
        if answer.buffering:
            if answer.buffer is None:
                answer.buffer = []
            answer.buffer.append(event)
            return
        self._deliver(event)
        if answer.probe_timer is None and answer.probe is None and self._state is State.STREAMING:
            self._arm_probe(answer)

    def _abort(self, answer: _Answer) -> None:
        self._end_probe(answer)
        for reader in answer.readers:
            reader.abort()

    def _touch(self, answer: _Answer) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self._idle_timeout)
        timer = answer.probe_timer
        if timer is not None and timer.active():
            timer.reset(self._quiet_interval(answer))

    def _went_idle(self, answer: _Answer) -> None:
        self._idle = None
        answer.idle = True
        answer.quiet = answer.events == 0 and (not answer.buffering or answer.poll_accepted)
        self._abort(answer)

    def _cancel_idle(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    # -- the probe -------------------------------------------------------------

    def _quiet_interval(self, answer: _Answer) -> float:
        """
        Seconds of quiet before the next probe: ``probe_interval``, doubled
        after each probe that found nothing missed, up to 8 times (a stream
        read promptly is not dropped; the probes then only notice a silent
        member and keep a quiet key in history), and never more than
        ``idle_timeout``; up to :data:`PROBE_JITTER` longer at random; half a
        second while the callbacks are saturated.
        """
        base = self._probe_interval
        assert base is not None
        if self._meter is not None and self._meter.saturated:
            return min(base, PROBE_SOON)
        grown: float = base * 2.0 ** min(answer.probe_round, 3)
        return min(grown, max(self._idle_timeout, base)) * (1.0 + PROBE_JITTER * jitter())

    def _arm_probe(self, answer: _Answer) -> None:
        # Only a stream that carried events can have been dropped (etcd drops a
        # reader whose queue of events overflows): a stream quiet since it
        # opened is left to the idle timer, so idle watchers cost no probes.
        if self._probe_interval is None or answer.over or answer.events == 0:
            return
        interval = self._quiet_interval(answer)
        answer.probe_timer = self._clock.callLater(interval, self._probe, answer)

    def _end_probe(self, answer: _Answer) -> Probe | None:
        timer, answer.probe_timer = answer.probe_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        probe, answer.probe = answer.probe, None
        if probe is not None:
            probe.cancel()
        return probe

    def _probe(self, answer: _Answer) -> None:
        answer.probe_timer = None
        if self._state is not State.STREAMING or answer.over:
            return
        assert self._next is not None
        self._enter(State.PROBING)
        self.probes += 1
        target = check_request_line(
            "GET", self._path, [*self._query, ("waitIndex", str(self._next))]
        )
        probe = answer.probe = Probe(
            self._source,
            answer.endpoint,
            target,
            PROBE_GRACE,
            lambda outcome: self._probed(answer, outcome),
        )
        probe.start()

    def _probed(self, answer: _Answer, outcome: Outcome) -> None:
        answer.probe = None
        if self._state is not State.PROBING or answer.over:
            return
        self._enter(State.STREAMING)
        if isinstance(outcome, Failed):
            error = outcome.error  # (a lost history is reported by the loop, as any)
            answer.error = error
            self._abort(answer)
            return
        if isinstance(outcome, Blocked):
            assert self._next is not None
            self._next = max(self._next, outcome.store + 1)
            if self._meter is not None:
                self._meter.reset()
            answer.probe_round += 1
        elif isinstance(outcome, Found):
            if outcome.behind and (self._index is None or outcome.event.index > self._index):
                self._fell_behind(answer, outcome)
                return
            self._deliver(outcome.event)
        if self._live():
            self._arm_probe(answer)

    def _fell_behind(self, answer: _Answer, found: Found) -> None:
        behind = found.store - (self._index if self._index is not None else found.event.index - 1)
        self._lagging(answer, Lag(DROPPED, behind))
        answer.behind = True
        self._abort(answer)
        self._deliver(found.event)

    def _lagging(self, answer: _Answer | None, lag: Lag) -> None:
        self.lagged += 1
        where = answer.endpoint if answer is not None else self.endpoint
        what = {
            BUSY: "the callbacks take nearly all the reactor's time; etcd will drop the "
            "stream if this goes on",
            DROPPED: "etcd dropped the stream (its queue for the watch overflowed: the "
            "callbacks, or etcd itself, fell behind the writes); catching up",
            HISTORY_LOST: "etcd no longer holds the events the watch needs (its history "
            "keeps the last 1,000 of the cluster); reading the tree",
        }[lag.reason]
        self.log.warn(
            "watch {key} is lagging at {endpoint} ({lag}): {what}",
            key=self._key,
            endpoint=where,
            lag=str(lag),
            what=what,
        )
        self._emit("lagging", lag)

    def _deliver(self, event: EtcdResponse) -> None:
        if not self._live():
            return
        if self._index is not None and event.index <= self._index:
            self.log.debug(
                "watch {key}: skipped {index}, already delivered", key=self._key, index=event.index
            )
            return
        self._index = event.index
        self._next = event.index + 1
        self._failures = 0
        if self._recursive and hidden_below(self._key, event.node.key):
            # etcd leaves hidden keys out of a recursive watch, except when it
            # answers from its history (a watch from a past index, a catch-up):
            # passed over, whichever way it came.
            self.log.debug(
                "watch {key}: passed over {index}, hidden key {hidden}",
                key=self._key,
                index=event.index,
                hidden=event.node.key,
            )
            return
        meter = self._meter
        if meter is None:
            meter = self._meter = BusyMeter(self._clock)
        started = self._clock.seconds()
        self._emit("change", event)
        if event.action in ACTIONS:
            self._emit(event.action, event)
        if meter.add(started) and self._live():
            self._lagging(self._answer, Lag(BUSY))
            answer = self._answer
            if answer is not None:
                self._touch(answer)  # the probe's shorter interval, from now


#: The default retry policy: stateless, so every watcher shares it.
_DEFAULT_POLICY = backoffPolicy()
