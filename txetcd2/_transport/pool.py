"""
The client's agent pool: keep-alive HTTP/1.1 connections to each etcd member.

:class:`EtcdAgent` is an :class:`~twisted.web.iweb.IAgent` (treq's
``HTTPClient`` runs over it) that keeps connections per member, keyed by
scheme, host and port, and parses answers with ``httptools``
(:mod:`txetcd2._transport.http11`). It opens connections through the same
endpoints and TLS policy as the Twisted agent (:class:`EndpointCache`), and
reports failures with the same exceptions (and, as that agent's, its TCP
connections do not use Nagle's algorithm).

Per member it keeps at most ``max_connections`` connections for ordinary
requests (long polls, ``wait=true``, are not counted: a watch may wait for
minutes); a request that finds none free waits for one. Idle connections
are closed after ``idle_timeout`` seconds, and at most ``max_idle`` are kept.
A read (``GET``, ``HEAD``, ``OPTIONS`` without a body) that finds its reused
connection closed before any byte of an answer is sent once more on a fresh
one; a write never is.

With ``pipeline_depth`` above 1, short reads are pipelined: ``GET`` without
``wait=true``, ``quorum=true`` (etcd answers a quorum read through its raft
log, as it does a write) or ``recursive=true`` (a listing may be a whole
tree); etcd answers one connection's requests one at a time, so no read
should wait behind a slow one. Once a member has ``pipeline_from``
connections, a short read that finds none idle goes behind those in flight
on the least busy one, up to ``pipeline_depth`` in flight. When that
connection fails, the reads queued behind the one being answered are sent
again elsewhere.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.address import HostnameAddress
from twisted.internet.defer import CancelledError, Deferred, DeferredList, fail
from twisted.internet.error import ConnectingCancelledError, ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from twisted.web.client import URI, ResponseFailed, ResponseNeverReceived
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from txetcd2._transport.agent import EndpointCache
from txetcd2._transport.http11 import HTTP11Connection, never_received
from txetcd2._transport.proxy import ProxiedEndpoints, proxy_choice
from txetcd2._transport.request import PendingRequest, check_request

#: How a member's requests are told apart: ``scheme://netloc``.
MemberKey = bytes


class _ConnectionFactory(Factory):
    """
    Builds the one connection it was made for, quietly (no "Starting factory").
    """

    noisy = False

    def __init__(self, connection: HTTP11Connection) -> None:
        self._connection = connection

    def buildProtocol(self, addr: Any) -> HTTP11Connection:
        return self._connection


class _Member:
    """
    The connections to one member, and the requests waiting for one.

    :ivar open: connections counted against the cap (all but long polls),
        connecting ones included.
    :ivar dialing: those of them still connecting.
    :ivar absolute: whether requests go to an HTTP proxy (absolute-form).
    :ivar extra: header lines added to each request (the proxy's).
    """

    def __init__(self, endpoint: IStreamClientEndpoint, host: bytes, address: Any) -> None:
        self.endpoint = endpoint
        self.host = host
        self.address = address
        self.idle: list[HTTP11Connection] = []
        self.busy: set[HTTP11Connection] = set()
        self.connecting: set[PendingRequest] = set()
        self.waiting: deque[PendingRequest] = deque()
        self.open = 0
        self.dialing = 0
        self.absolute = False
        self.extra = b""


@implementer(IAgent)
class EtcdAgent:
    """
    An agent with keep-alive connections per member and a C HTTP parser.

    :param reactor: the reactor (connections and the idle timer).
    :param tls: the policy for ``https`` members.
    :param connect_timeout: seconds to wait for a connection.
    :param max_connections: connections per member for ordinary requests
        (``None``: no cap).
    :param max_idle: idle connections kept per member.
    :param idle_timeout: seconds after which an idle connection is closed
        (``None``: never).
    :param pipeline_depth: requests in flight per connection for pipelined
        reads (1: no pipelining).
    :param pipeline_from: connections a member must have before reads are
        pipelined (default: ``max_connections // pipeline_depth``).
    :param proxy: an HTTP proxy's URL, or ``"env"`` to follow the
        ``http_proxy``/``https_proxy``/``no_proxy`` environment variables
        (see :mod:`txetcd2._transport.proxy`).
    :raises ValueError: for a setting out of range.
    """

    def __init__(
        self,
        reactor: Any,
        tls: IPolicyForHTTPS | None = None,
        connect_timeout: float | None = None,
        max_connections: int | None = 64,
        max_idle: int = 64,
        idle_timeout: float | None = 60.0,
        pipeline_depth: int = 1,
        pipeline_from: int | None = None,
        proxy: str | None = None,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be at least 1 or None, not {max_connections}")
        if max_idle < 0:
            raise ValueError(f"max_idle must be at least 0, not {max_idle}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive or None, not {idle_timeout}")
        if pipeline_depth < 1:
            raise ValueError(f"pipeline_depth must be at least 1, not {pipeline_depth}")
        self._clock = reactor
        self._proxies = proxy_choice(proxy)
        if self._proxies is None:
            self._endpoints = EndpointCache(reactor, tls, connect_timeout)
        else:
            self._endpoints = ProxiedEndpoints(reactor, self._proxies, tls, connect_timeout)
        self._cap = max_connections
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._depth = pipeline_depth
        if pipeline_from is None:
            pipeline_from = max(1, (max_connections or 64) // pipeline_depth)
        self._pipeline_from = pipeline_from
        self._members: dict[MemberKey, _Member] = {}
        self._reaper: IDelayedCall | None = None
        self._closing = False
        #: bound once: every request keeps it (and long polls last for hours)
        self._canceller = self._cancel

    def __repr__(self) -> str:
        return (
            f"<EtcdAgent members={len(self._members)} max_connections={self._cap} "
            f"pipeline_depth={self._depth}>"
        )

    # -- IAgent --------------------------------------------------------------

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        """
        Send a request on a connection to its member.

        :param method: the method.
        :param uri: the absolute URL.
        :param headers: the headers (``Host`` is added unless given).
        :param bodyProducer: the body, if any.
        :returns: a Deferred firing with the answer once its headers came;
            cancelling it aborts the request (and its connection).
        :raises ValueError: for a method or URL that cannot be sent.
        """
        start = uri.find(b"://") + 3
        end = uri.find(b"/", start)
        if end < 0:
            key, target = uri, b"/"
        else:
            key, target = uri[:end], uri[end:]
        member = self._members.get(key)
        if member is None:
            try:
                member = self._member(key)
            except SchemeNotSupported:
                return fail()
        check_request(method, target)
        query = target.find(b"?")
        long_poll = alone = False
        if query >= 0:
            params = target[query:]
            long_poll = b"wait=true" in params
            alone = b"quorum=true" in params or b"recursive=true" in params
        request = PendingRequest(
            method,
            uri,
            uri if member.absolute else target,
            headers if headers is not None else Headers(),
            bodyProducer,
            long_poll,
            self._canceller,
            alone,
        )
        request.member = member
        self._dispatch(member, request)
        return request.d

    def _member(self, key: bytes) -> _Member:
        scheme = start_of_scheme(key)
        if scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"Unsupported scheme: {scheme!r}")
        if b"?" in key or b"#" in key:
            raise ValueError(f"invalid URL {key!r}: give a path after the host")
        parsed = URI.fromBytes(key)
        endpoint = self._endpoints.endpointForURI(parsed)
        host = parsed.netloc
        member = _Member(endpoint, host, HostnameAddress(parsed.host, parsed.port))
        if self._proxies is not None and scheme == b"http":
            proxy = self._proxies("http", parsed.host.decode("ascii"))
            if proxy is not None:
                member.absolute = True
                member.extra = proxy.header_lines()
        self._members[key] = member
        return member

    # -- giving requests connections ----------------------------------------

    def _dispatch(self, member: _Member, request: PendingRequest, fresh: bool = False) -> None:
        idle = member.idle
        if idle and not fresh:
            self._send(member, idle.pop(), request)
            return
        if request.long_poll:
            self._connect(member, request)
            return
        if self._depth > 1 and request.pipelined and member.open >= self._pipeline_from:
            connection = self._pipeline_target(member)
            if connection is not None:
                self._send(member, connection, request)
                return
            if member.dialing:
                # Wait for the connections being made rather than make more.
                request.state = "waiting"
                member.waiting.append(request)
                return
        if self._cap is None or member.open < self._cap:
            self._connect(member, request)
            return
        request.state = "waiting"
        member.waiting.append(request)

    def _feed(self, member: _Member, connection: HTTP11Connection) -> None:
        # Give ``connection`` the waiting requests it can carry: one if it is
        # free, more reads behind reads when pipelining.
        waiting = member.waiting
        while waiting and connection.reusable:
            queue = connection.queue
            if queue:
                request = waiting[0]
                if not (request.pipelined and queue[0].pipelined and len(queue) < self._depth):
                    return
            self._send(member, connection, waiting.popleft())

    def _pipeline_target(self, member: _Member) -> HTTP11Connection | None:
        best: HTTP11Connection | None = None
        load = self._depth
        for connection in member.busy:
            queue = connection.queue
            if len(queue) < load and queue and queue[0].pipelined and connection.reusable:
                best, load = connection, len(queue)
        return best

    def _send(
        self, member: _Member, connection: HTTP11Connection, request: PendingRequest
    ) -> None:
        if request.long_poll and not connection.polling:
            connection.polling = True
            member.open -= 1
        now = not request.long_poll and not connection.queue and _quiet(member)
        member.busy.add(connection)
        connection.send(request, now)

    def _connect(self, member: _Member, request: PendingRequest) -> None:
        connection = HTTP11Connection(self, member.host, member)
        connection.extra = member.extra
        connection.explicit_keep_alive = member.absolute
        connection.polling = request.long_poll
        if not connection.polling:
            member.open += 1
            member.dialing += 1
        request.state = "connecting"
        member.connecting.add(request)
        connecting = member.endpoint.connect(_ConnectionFactory(connection))
        request.connecting = connecting
        connecting.addCallbacks(
            self._connected,
            self._connect_failed,
            callbackArgs=(member, connection, request),
            errbackArgs=(member, connection, request),
        )

    def _connected(
        self, _: object, member: _Member, connection: HTTP11Connection, request: PendingRequest
    ) -> None:
        request.connecting = None
        member.connecting.discard(request)
        if not connection.polling:
            member.dialing -= 1
        if not connection.connected:
            # Gone before it could carry anything.
            self._connect_failed(
                never_received(Failure(ConnectionDone())), member, connection, request
            )
            return
        unwrap(connection)
        now = not request.long_poll and _quiet(member)
        member.busy.add(connection)
        connection.send(request, now)
        self._feed(member, connection)

    def _connect_failed(
        self,
        failure: Failure,
        member: _Member,
        connection: HTTP11Connection,
        request: PendingRequest,
    ) -> None:
        if request.connecting is not None:
            request.connecting = None
            member.connecting.discard(request)
            if not connection.polling:
                member.dialing -= 1
        if not connection.retired:
            connection.retired = True
            if not connection.polling:
                member.open -= 1
        request.fail(failure)
        self._drain(member)

    def _drain(self, member: _Member) -> None:
        # A connection slot came free: give it to the first request waiting.
        while member.waiting and (self._cap is None or member.open < self._cap):
            self._connect(member, member.waiting.popleft())

    # -- what connections report (ConnectionOwner) ---------------------------

    def released(self, connection: HTTP11Connection) -> None:
        """
        An answer ended on ``connection``: give it the next request, or keep it idle.

        :param connection: the connection.
        """
        member: _Member = connection.key
        if connection.polling:
            connection.polling = False
            member.open += 1
        self._feed(member, connection)
        if connection.queue:
            return  # busy again, or pipelined reads still in flight
        member.busy.discard(connection)
        if (
            len(member.idle) >= self._max_idle
            or self._closing
            or (self._cap is not None and member.open > self._cap)
        ):
            connection.close()
            return
        connection.idle_since = self._clock.seconds()
        member.idle.append(connection)
        if self._reaper is None and self._idle_timeout is not None:
            self._reaper = self._clock.callLater(self._idle_timeout, self._reap)

    def retire(self, connection: HTTP11Connection) -> None:
        """
        Stop giving requests to ``connection`` (it is closing).

        :param connection: the connection.
        """
        if connection.retired:
            return
        connection.retired = True
        member: _Member = connection.key
        member.busy.discard(connection)
        if connection in member.idle:
            member.idle.remove(connection)
        if not connection.polling:
            member.open -= 1
        self._drain(member)

    def lost(
        self, connection: HTTP11Connection, reason: Failure, unanswered: list[PendingRequest]
    ) -> None:
        """
        Retry, re-send or fail the requests a lost connection left unanswered.

        :param connection: the connection.
        :param reason: why it closed.
        :param unanswered: the requests that got no byte of an answer.
        """
        self.retire(connection)
        member: _Member = connection.key
        for request in unanswered:
            if request.d.called:
                continue
            if self._closing or reason.check(CancelledError):
                request.fail(never_received(reason))
            elif request.reused and request.idempotent and not request.retried:
                request.retried = True
                self._again(member, request)
            elif (
                (request.behind or connection.aborted) and request.pipelined and not request.resent
            ):
                request.resent = True
                self._again(member, request)
            else:
                request.fail(never_received(reason))

    def _again(self, member: _Member, request: PendingRequest) -> None:
        request.touched = False
        request.connection = None
        self._dispatch(member, request, fresh=True)

    # -- cancellation --------------------------------------------------------

    def _cancel(self, request: PendingRequest) -> None:
        member: _Member = request.member
        state = request.state
        if state == "waiting":
            member.waiting.remove(request)
            request.fail(Failure(ConnectingCancelledError(member.address)))
        elif state == "connecting" and request.connecting is not None:
            request.connecting.cancel()
        elif state == "sent" and request.connection is not None:
            cancelled = Failure(CancelledError())
            if request.touched:
                request.fail(Failure(ResponseFailed([cancelled])))
            else:
                request.fail(Failure(ResponseNeverReceived([cancelled])))
            request.connection.abort()

    # -- idle connections and closing ----------------------------------------

    def _reap(self) -> None:
        self._reaper = None
        assert self._idle_timeout is not None
        now = self._clock.seconds()
        oldest: float | None = None
        for member in list(self._members.values()):
            for connection in list(member.idle):
                if connection.idle_since <= now - self._idle_timeout:
                    connection.close()
                elif oldest is None or connection.idle_since < oldest:
                    oldest = connection.idle_since
        if oldest is not None:
            self._reaper = self._clock.callLater(oldest + self._idle_timeout - now, self._reap)

    def closeCachedConnections(self) -> Deferred[None]:
        """
        Close every connection: idle ones at once, busy ones aborted, and
        fail the requests waiting or connecting.

        :returns: a Deferred firing once every connection is closed.
        """
        self._closing = True
        if self._reaper is not None:
            if self._reaper.active():
                self._reaper.cancel()
            self._reaper = None
        closing: list[Deferred[None]] = []
        for member in self._members.values():
            for request in list(member.waiting) + list(member.connecting):
                request.d.cancel()
            for connection in list(member.idle):
                closing.append(connection.closed)
                connection.close()
            for connection in list(member.busy):
                closing.append(connection.closed)
                connection.abort()

        def closed(_: object) -> None:
            self._closing = False

        done = DeferredList(closing, consumeErrors=True).addCallback(closed)
        return done


#: The most busy connections :func:`_quiet` looks through.
_QUIET_SCAN = 8


def _quiet(member: _Member) -> bool:
    # Whether nothing but long polls is in flight to ``member`` (when a few
    # connections are busy at most): then a request is sent at once rather
    # than at the reactor's next turn (HTTP11Connection.send's ``now``).
    # Long polls themselves are not: they wait for an event anyway (and
    # thousands of idle watchers measured 0.45 KiB more each when the first
    # ones were sent at once, a cost not found but measured in workload E).
    busy = member.busy
    if len(busy) > _QUIET_SCAN:
        return False
    return all(connection.polling or not connection.queue for connection in busy)


def unwrap(connection: HTTP11Connection) -> None:
    """
    Let a plain TCP transport call ``connection`` itself rather than the
    endpoint's wrapper, which only forwards calls once connected: one object
    (and one call per read) less per connection, and idle watchers keep
    thousands of connections. A transport that is not such a pair (TLS, a
    test's) is left alone.

    :param connection: a connection just made.
    """
    transport = connection.transport
    wrapper = getattr(transport, "protocol", None)
    if (
        wrapper is not connection
        and type(wrapper).__name__ == "_WrappingProtocol"
        and getattr(wrapper, "_wrappedProtocol", None) is connection
    ):
        transport.protocol = connection  # type: ignore[union-attr]


def start_of_scheme(key: bytes) -> bytes:
    """
    The scheme of a ``scheme://netloc`` key.

    :param key: the key.
    :returns: the scheme, lower-cased.
    """
    return key.partition(b"://")[0].lower()
