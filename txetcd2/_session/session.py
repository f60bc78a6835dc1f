"""
The one road to the wire: every request of every API (key space, watches,
admin, auth, status, member sync) goes through :class:`Session`.

A session owns the member list and its pin, the exchange, the freshness and
cluster-ID checks, the v2-disabled check, ``307`` following for reads, the
retry policy, the whole-call deadline and the table of calls in flight (so
that :meth:`Session.close` ends every one of them at once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from txetcd2._logs import PublicLogger
from txetcd2._session.disabled import check_enabled
from txetcd2._session.members import Cluster
from txetcd2._session.redirect import MAX_REDIRECTS, redirect_target
from txetcd2._session.retry import never_left
from txetcd2._transport.deadline import Deadline, follow
from txetcd2._transport.exchange import Exchange, abort_answer
from txetcd2._wire.answers import RawResponse, error_for, etcd_headers
from txetcd2._wire.direct import direct_constructor
from txetcd2._wire.errors import (
    ClientClosed,
    EtcdConnectionError,
    EtcdError,
    EtcdOutcomeUnknown,
    EtcdTimeout,
    EtcdTLSError,
)

_T = TypeVar("_T")


class Stoppable(Protocol):
    """
    Something a session stops when it closes (a running watcher, a hub): an
    :class:`~twisted.application.service.IService`'s stop.
    """

    def stopService(self) -> Deferred[None] | None:
        """
        :returns: a Deferred firing once it has stopped (or ``None``).
        """


@attrs.frozen
class Request:
    """
    One request, as every API describes it to the session.

    :ivar method: the HTTP method.
    :ivar target: the percent-encoded path and query.
    :ivar what: what it is about (a key, ``"members"``), for messages.
    :ivar idempotent: whether it may be sent again to another member.
    :ivar form: the body, if any.
    :ivar headers: extra headers (a body's ``Content-Type``).
    :ivar keyspace: a ``/v2/keys`` request: busy answers (5xx, errorCode
        300/301) are retried after a back-off, stale answers to reads are
        refused, and ``307`` is followed for ``GET``.
    :ivar check_v2: tell Go's plain 404 on ``/v2`` apart as
        :class:`~txetcd2.errors.EtcdV2Disabled`.
    """

    method: str
    target: str
    what: str
    idempotent: bool
    form: bytes | None = None
    headers: Headers | None = None
    keyspace: bool = False
    check_v2: bool = True


#: :class:`Request` as the APIs build one per call (see :mod:`txetcd2._wire.direct`).
make_request = direct_constructor(Request)


class Session:
    """
    The cluster as the APIs see it: one request path with failover, checks
    and deadlines, and the life cycle of everything running on it.

    Requests go first to the pinned member (the last one that answered), then
    to the others in order. A member that cannot be reached is skipped at
    once; the session backs off (``retry_policy``) only after a full sweep,
    or after a member said the cluster is busy, at most ``max_retries``
    times. The call's ``timeout`` bounds all of it: each idempotent attempt
    gets an equal share of what remains among the members not yet tried in
    the sweep (a paused member cannot use up the whole call), a write gets
    all that remains, and a back-off that would pass the deadline ends the
    call.

    :param members: the member list.
    :param exchange: sends requests to one member.
    :param clock: the clock for deadlines and back-offs.
    :param timeout: the default deadline of a call, in seconds.
    :param max_retries: the default number of back-offs of one call.
    :param retry_policy: seconds to wait before back-off ``n`` (from 0).
    """

    log = PublicLogger(namespace="txetcd2.session")

    def __init__(
        self,
        members: Cluster,
        exchange: Exchange,
        clock: IReactorTime,
        *,
        timeout: float,
        max_retries: int,
        retry_policy: Callable[[int], float],
    ) -> None:
        self.members = members
        self.exchange = exchange
        self.clock = clock
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_policy = retry_policy
        self._pending: set[Deferred[Any]] = set()
        self._services: set[Stoppable] = set()
        self._closing: Deferred[None] | None = None

    # -- life cycle ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """
        Whether :meth:`close` was called.
        """
        return self._closing is not None

    def check_open(self) -> None:
        """
        :raises ClientClosed: once the session is closed.
        """
        if self._closing is not None:
            raise ClientClosed()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> Deferred[_T]:
        """
        Run one call: a Deferred that :meth:`close` cancels, and whose
        ``cancel()`` fires it at once with :class:`CancelledError`, whatever
        the call was doing at that instant.

        :param coroutine: the call.
        :returns: its Deferred.
        :raises ClientClosed: once the session is closed.
        """
        if self._closing is not None:
            coroutine.close()
            raise ClientClosed()
        return self._track(Deferred.fromCoroutine(coroutine))

    def call(
        self,
        request: Request,
        deadline: Deadline,
        max_retries: int | None,
        finish: Callable[[RawResponse, str], _T],
    ) -> Deferred[_T]:
        """
        Run one request as a call of its own, as :meth:`run` runs a
        coroutine: :meth:`request`, then ``finish(answer, request.what)``
        (the decoding), chained without a coroutine of its own.

        :param request: what to send.
        :param deadline: when the call must be over.
        :param max_retries: back-offs allowed (default: the session's).
        :param finish: turns the answer into the call's result (or raises).
        :returns: the call's Deferred (cancellable as :meth:`run`'s).
        :raises ClientClosed: once the session is closed.
        """
        if self._closing is not None:
            raise ClientClosed()
        return self._track(self._start(request, deadline, max_retries, None, finish))

    def _track(self, inner: Deferred[_T]) -> Deferred[_T]:
        # The caller's Deferred: close() cancels it, and its cancel() fires it
        # at once, whatever ``inner`` does with the cancellation. (A Deferred
        # of its own: ``inner`` is called, and paused, while it waits for a
        # body or another member; the caller's is called with the result.)
        outer: Deferred[_T] = Deferred(lambda _: inner.cancel())
        pending = self._pending
        pending.add(outer)
        inner.addBoth(_settle, pending, outer)
        return outer

    def track(self, service: Stoppable) -> None:
        """
        Remember a running watcher (or hub), for :meth:`close` to stop; after
        :meth:`close`, nothing is remembered (the watcher's next request meets
        :meth:`check_open`).

        :param service: the running service.
        """
        if self._closing is None:
            self._services.add(service)

    def untrack(self, service: Stoppable) -> None:
        """
        Forget a stopped watcher.

        :param service: the service.
        """
        self._services.discard(service)

    def close(self) -> Deferred[None]:
        """
        Cancel every call in flight and stop every tracked watcher.

        :returns: a Deferred firing once every watcher has stopped; calling
            it again gives the same moment.
        """
        if self._closing is None:
            for d in list(self._pending):
                d.cancel()
            stops = [maybeDeferred(service.stopService) for service in list(self._services)]
            self._services.clear()
            self._closing = gatherResults(stops, consumeErrors=True).addBoth(lambda _: None)
        return follow(self._closing)

    # -- requests --------------------------------------------------------------

    def deadline(self, timeout: float | None) -> Deadline:
        """
        :param timeout: a call's ``timeout=``; ``None`` for the session's default.
        :returns: the call's deadline.
        """
        return Deadline(self.clock, self.timeout if timeout is None else timeout)

    def request(
        self,
        request: Request,
        deadline: Deadline,
        max_retries: int | None = None,
        only: Sequence[str] | None = None,
    ) -> Deferred[RawResponse]:
        """
        Send a request to the cluster and read its whole answer.

        The first attempt goes out as a plain callback chain; only when it
        does not end the call (a failure, an answer that cannot be used, a
        ``307`` or ``404`` to look into) does the rest of the call run as a
        coroutine, from that first outcome on, with the same rules.

        :param request: what to send.
        :param deadline: when the call must be over.
        :param max_retries: back-offs allowed (default: the session's).
        :param only: ask these members (in this order) instead of the
            cluster's, still with the cluster's checks.
        :returns: a Deferred firing with the first usable answer, whatever
            its status.
        :raises EtcdConnectionError: one member, which failed.
        :raises ClusterUnavailable: several, which all failed.
        :raises EtcdOutcomeUnknown: a request that is not idempotent may
            have been applied; it was not sent again.
        :raises EtcdTLSError: a TLS configuration error (never retried).
        :raises EtcdClusterMismatch: the only member left is another cluster's.
        """
        return self._start(request, deadline, max_retries, only, None)

    def _start(
        self,
        request: Request,
        deadline: Deadline,
        max_retries: int | None,
        only: Sequence[str] | None,
        finish: Callable[[RawResponse, str], Any] | None,
    ) -> Deferred[Any]:
        # request(), and then finish(answer, request.what) when it is given,
        # in the same callback as the first answer's checks.
        order = list(only) if only else self.members.order()
        remaining = deadline.remaining()
        if not order or (remaining is not None and remaining <= 0):
            call = self._call(request, deadline, self._attempt(request), _same, max_retries, only)
            return _then(Deferred.fromCoroutine(call), finish, request.what)
        seconds = remaining
        if remaining is not None and request.idempotent:
            seconds = remaining / len(order)
        return self.exchange.send(
            order[0],
            request.method,
            request.target,
            request.form,
            seconds,
            request.headers,
            self._first,
            (request, deadline, max_retries, only, order, seconds, finish),
        )

    def _first(
        self,
        outcome: RawResponse | Failure,
        request: Request,
        deadline: Deadline,
        max_retries: int | None,
        only: Sequence[str] | None,
        order: list[str],
        seconds: float | None,
        finish: Callable[[RawResponse, str], Any] | None,
    ) -> Any:
        # The outcome of the first attempt, judged as _call judges any; the
        # rest of the call, if there is one, runs in _call from there.
        if isinstance(outcome, Failure):
            error = outcome.value
            if not isinstance(error, EtcdConnectionError) or isinstance(error, EtcdTLSError):
                return outcome  # cancelled, a TLS configuration error, a bug: as _call
            first: _Outcome[RawResponse] = error
        elif outcome.status == 307 or outcome.status == 404:
            rest = self._follow_first(
                outcome, request, deadline, max_retries, only, order, seconds
            )
            return _then(Deferred.fromCoroutine(rest), finish, request.what)
        else:
            read = request.idempotent and request.method in ("GET", "HEAD")
            rejected, busy = self.members.judge(outcome, read, request.keyspace)
            if rejected is None:
                self.members.pin(order[0])
                return outcome if finish is None else finish(outcome, request.what)
            first = (outcome, rejected, busy)
        attempt = self._attempt(request)
        rest = self._call(
            request, deadline, attempt, _same, max_retries, only, first=(order, first)
        )
        return _then(Deferred.fromCoroutine(rest), finish, request.what)

    async def _follow_first(
        self,
        raw: RawResponse,
        request: Request,
        deadline: Deadline,
        max_retries: int | None,
        only: Sequence[str] | None,
        order: list[str],
        seconds: float | None,
    ) -> RawResponse:
        # A first answer to follow (307) or to look into (404), then the rest
        # of the call as _call would go on after its first attempt.
        step: _Outcome[RawResponse]
        try:
            raw = await self._follow_up(raw, order[0], request, seconds)
        except EtcdTLSError:
            raise
        except EtcdConnectionError as failed:
            step = failed
        else:
            read = request.idempotent and request.method in ("GET", "HEAD")
            step = (raw, *self.members.judge(raw, read, request.keyspace))
        attempt = self._attempt(request)
        return await self._call(
            request, deadline, attempt, _same, max_retries, only, first=(order, step)
        )

    async def poll(
        self, request: Request, deadline: Deadline, wait: float
    ) -> tuple[RawResponse, bool]:
        """
        Send a long-poll ``GET``: headers within the deadline, the body
        within ``wait`` seconds.

        :param request: the watch request.
        :param deadline: when the answer's headers must have come.
        :param wait: seconds to wait for the body.
        :returns: the answer and whether its body came (``False``: the wait
            ran out and the answer was abandoned).
        """

        async def attempt(endpoint: str, seconds: float | None) -> tuple[RawResponse, bool]:
            raw, complete = await self.exchange.poll(endpoint, request.target, seconds, wait)
            if raw.status == 404:
                await check_enabled(self.exchange, raw, request.target, seconds)
            return raw, complete

        # A long-poll's X-Etcd-Index is the index when etcd accepted it, older than
        # what other calls may have seen since: never a sign of a stale member.
        return await self._call(request, deadline, attempt, _first, None, None, False)

    async def open(
        self, endpoint: str, target: str, timeout: float
    ) -> tuple[IResponse, dict[str, str]]:
        """
        Open a watch answer on one member and wait for its headers.

        The answer is checked as any other: another cluster's member, a TLS
        failure, a v2-disabled member or an error answer raise their typed
        error, and on every error path the answer's body is read or its
        connection aborted, never left open.

        :param endpoint: the member.
        :param target: the encoded path and query.
        :param timeout: seconds to wait for the headers.
        :returns: the unread ``200`` answer and etcd's headers.
        """
        deadline = Deadline(self.clock, timeout)
        response = await self.exchange.open_within(endpoint, "GET", target, timeout, "watch")
        headers = etcd_headers(response.headers)
        if response.code != 200:
            remaining = deadline.remaining()
            body = await self.exchange.read_within(endpoint, response, remaining, "watch")
            raw = RawResponse(endpoint, response.code, headers, body)
            await check_enabled(self.exchange, raw, target, deadline.remaining())
            raise error_for(raw)
        foreign = self.members.freshness.foreign(RawResponse(endpoint, 200, headers, b""))
        if foreign is not None:
            abort_answer(response)
            self.members.refuse(endpoint, foreign)
            raise foreign
        return response, headers

    def _attempt(self, request: Request) -> Callable[[str, float | None], Deferred[RawResponse]]:
        return lambda endpoint, seconds: self._send(endpoint, request, seconds)

    def _send(
        self, endpoint: str, request: Request, seconds: float | None
    ) -> Deferred[RawResponse]:
        d = self.exchange.send(
            endpoint, request.method, request.target, request.form, seconds, request.headers
        )
        return d.addCallback(self._sent, endpoint, request, seconds)

    def _sent(
        self, raw: RawResponse, endpoint: str, request: Request, seconds: float | None
    ) -> RawResponse | Deferred[RawResponse]:
        if raw.status != 307 and raw.status != 404:
            return raw  # nothing to follow or to look into
        return Deferred.fromCoroutine(self._follow_up(raw, endpoint, request, seconds))

    async def _follow_up(
        self, raw: RawResponse, endpoint: str, request: Request, seconds: float | None
    ) -> RawResponse:
        # A 307 to a key-space GET is followed; a 404 may mean v2 is disabled.
        exchange = self.exchange
        method, target = request.method, request.target
        if request.keyspace and method == "GET":
            for _ in range(MAX_REDIRECTS):
                found = redirect_target(raw, target)
                if found is None:
                    break
                endpoint, target = found
                raw = await exchange.send(endpoint, method, target, None, seconds, request.headers)
        if raw.status == 404 and request.check_v2:
            await check_enabled(exchange, raw, target, seconds, request.headers)
        return raw

    async def _call(
        self,
        request: Request,
        deadline: Deadline,
        attempt: Callable[[str, float | None], Awaitable[_T]],
        answer: Callable[[_T], RawResponse],
        max_retries: int | None,
        only: Sequence[str] | None,
        stale_check: bool = True,
        first: tuple[list[str], _Outcome[_T]] | None = None,
    ) -> _T:
        """
        The whole call: attempts over the members, sweeps and back-offs.

        :param first: the order of the first sweep and the outcome of its
            first attempt when it was made already (by :meth:`request`):
            the connection error it raised, or its result with how the
            members judged it.
        """
        members = self.members
        retries = self.max_retries if max_retries is None else max_retries
        read = stale_check and request.idempotent and request.method in ("GET", "HEAD")
        errors: dict[str, Exception] = {}
        backoffs = 0
        while True:
            pending: _Outcome[_T] | None = None
            if first is not None:
                (order, pending), first = first, None
            else:
                order = list(only) if only else members.order()
            if not order:
                raise members.give_up(errors)
            for position, endpoint in enumerate(order):
                step: _Outcome[_T]
                if pending is not None:
                    step, pending = pending, None
                else:
                    remaining = deadline.remaining()
                    if remaining is not None and remaining <= 0:
                        raise self._out_of_time(errors, request, deadline)
                    seconds = remaining
                    if remaining is not None and request.idempotent:
                        seconds = remaining / (len(order) - position)
                    try:
                        result = await attempt(endpoint, seconds)
                    except EtcdTLSError:
                        raise  # a configuration error: every member would fail the same way
                    except EtcdConnectionError as failed:
                        step = failed
                    else:
                        step = (result, *members.judge(answer(result), read, request.keyspace))
                if isinstance(step, EtcdConnectionError):
                    e: EtcdConnectionError = step
                    cause = e.__cause__
                    sent = not (cause is not None and never_left(cause))
                    if sent and not request.idempotent:
                        members.unpin(endpoint)
                        raise EtcdOutcomeUnknown(endpoint, request.method, request.what, e) from e
                    error: EtcdError = e
                    busy = False
                else:
                    result, rejected, busy = step
                    if rejected is None:
                        members.pin(endpoint)
                        return result
                    error = rejected
                    if busy and not request.idempotent:
                        members.unpin(endpoint)
                        raise EtcdOutcomeUnknown(endpoint, request.method, request.what, error)
                errors[endpoint] = error
                members.unpin(endpoint)
                self.log.warn(
                    "etcd member {endpoint} failed {method} {what}: {error}",
                    endpoint=endpoint,
                    method=request.method,
                    what=request.what,
                    error=str(error),
                )
                last = position == len(order) - 1
                if busy and not last and backoffs < retries:
                    await self._back_off(backoffs, errors, request, deadline)
                    backoffs += 1
            if backoffs >= retries:
                raise members.give_up(errors)
            await self._back_off(backoffs, errors, request, deadline)
            backoffs += 1

    async def _back_off(
        self, backoffs: int, errors: dict[str, Exception], request: Request, deadline: Deadline
    ) -> None:
        delay = self.retry_policy(backoffs)
        if not deadline.allows(delay):
            raise self._out_of_time(errors, request, deadline)
        self.log.info(
            "etcd: all members failed {method} {what}; retry {attempt} in {delay:.2f}s",
            method=request.method,
            what=request.what,
            attempt=backoffs + 1,
            delay=delay,
        )
        await deferLater(self.clock, delay, lambda: None)

    def _out_of_time(
        self, errors: dict[str, Exception], request: Request, deadline: Deadline
    ) -> EtcdError:
        found = self.members.give_up(errors)
        if isinstance(found, EtcdTimeout):
            # One member that timed out: name the call's limit, not the attempt's share.
            return EtcdTimeout(
                found.endpoint, f"{request.method} {request.what}", deadline.seconds or 0.0
            )
        return found


#: What one attempt came to: the connection error it raised, or its result
#: with the members' judgement of it (the error that rejects it, if any, and
#: whether the cluster said it was busy).
_Outcome = EtcdConnectionError | tuple[_T, EtcdError | None, bool]


def _then(
    d: Deferred[RawResponse], finish: Callable[[RawResponse, str], Any] | None, what: str
) -> Deferred[Any]:
    return d if finish is None else d.addCallback(finish, what)


def _settle(result: object, pending: set[Deferred[Any]], outer: Deferred[Any]) -> None:
    # The end of a call: its caller's Deferred fires (unless it was cancelled
    # and fired already), and close() has nothing more to cancel.
    pending.discard(outer)
    if not outer.called:
        if isinstance(result, Failure):
            outer.errback(result)
        else:
            outer.callback(result)


def _same(raw: RawResponse) -> RawResponse:
    return raw


def _first(found: tuple[RawResponse, bool]) -> RawResponse:
    return found[0]
