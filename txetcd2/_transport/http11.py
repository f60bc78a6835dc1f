"""
One HTTP/1.1 client connection: request bytes built directly, answers parsed
by ``httptools`` (llhttp, the C parser uvicorn uses).

(Request bytes and a request's state: :mod:`txetcd2._transport.request`.)
A connection carries a queue of requests: the first one is being answered,
the others (pipelined reads) wait for their turn. Failures are reported with
the exceptions Twisted's :class:`~twisted.web.client.Agent` uses, so the
layers above cannot tell the two apart:

- the connection closed before any byte of the answer:
  :class:`~twisted.web.client.ResponseNeverReceived` ``([reason])``;
- it closed or sent garbage after some bytes, before the headers ended:
  :class:`~twisted.web.client.ResponseFailed` ``([reason])``;
- a body with a length (``Content-Length`` or chunked) was cut: its reader
  gets :class:`~twisted.web.client.ResponseFailed` ``([reason,
  TruncatedBody])``; a body read until the connection closed ends with
  :class:`~twisted.web.http.PotentialDataLoss`.

What to do with the requests a lost connection leaves unanswered (retry,
re-send or fail) is its owner's decision (:class:`ConnectionOwner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any
from typing import Protocol as TypingProtocol

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import RequestGenerationFailed, ResponseFailed, ResponseNeverReceived
from twisted.web.http import RESPONSES, PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from txetcd2._transport.immediate import send_now
from txetcd2._transport.request import WITH_BODY, BodyWriter, PendingRequest, request_head
from txetcd2._transport.response import BODY_DONE, PoolResponse

#: The most bytes an answer's status line and headers may take.
MAX_HEADER_BYTES = 64 * 1024

#: The longest body of a short read's answer that is read whole before the
#: answer is given (see :meth:`HTTP11Connection.on_headers_complete`).
HOLD_BYTES = 256 * 1024

#: Header names as Twisted's :class:`Headers` spells them, by name as sent.
_CANONICAL: dict[bytes, bytes] = {}

#: How many distinct names :data:`_CANONICAL` keeps (a server may send any).
_MAX_NAMES = 512


#: Whether :class:`Headers` keeps its values in a ``_rawHeaders`` table by
#: canonical name (every Twisted this package supports does), which
#: :func:`headers_of` then hands it whole.
_SHARED_TABLE = isinstance(getattr(Headers(), "_rawHeaders", None), dict)


def canonical_name(name: bytes) -> bytes:
    """
    A header name as Twisted's :class:`Headers` spells it (``X-Etcd-Index``),
    remembered for the next answers.

    :param name: the name as it was sent.
    :returns: the canonical spelling.
    """
    canonical = _CANONICAL.get(name)
    if canonical is None:
        canonical = next(iter(Headers({name: [b""]}).getAllRawHeaders()))[0]
        if len(_CANONICAL) < _MAX_NAMES:
            _CANONICAL[name] = canonical
    return canonical


def headers_of(table: dict[bytes, list[bytes]]) -> Headers:
    """
    The :class:`Headers` of an answer, from the table its connection built.

    llhttp has already refused names that are not tokens and values with
    line breaks, so the connection only spells each name as Twisted does
    (:func:`canonical_name`) as the parser hands it over, and the table is
    given to :class:`Headers` as is, without the per-value checks of the
    public constructor (which is used when :class:`Headers` keeps no such
    table).

    :param table: the values by canonical name, in the order they came.
    :returns: the headers.
    """
    headers = Headers()
    if _SHARED_TABLE:
        headers._rawHeaders = table
    else:  # pragma: no cover - a Twisted without the table
        for name, values in table.items():
            headers.setRawHeaders(name, values)
    return headers


#: The connections whose bytes a parser is reading now, the innermost last
#: (a callback may make another connection read, e.g. over a test's loopback).
_reading: list[HTTP11Connection] = []

#: The connections given requests while answers were being read, whose
#: request bytes are sent when the outermost read ends (see
#: :meth:`HTTP11Connection.send`).
_gathered: list[HTTP11Connection] = []


def _send_gathered() -> None:
    # The end of the outermost read: send every connection's gathered bytes.
    while _gathered:
        connections = list(_gathered)
        _gathered.clear()
        for connection in connections:
            connection.send_gathered()


def _on_message_begin() -> None:
    _reading[-1].on_message_begin()


def _on_header(name: bytes, value: bytes) -> None:
    # The answer's header table, built as the parser goes (what
    # headers_of() needs), names spelled as canonical_name() does, inline:
    # this runs for every header of every answer.
    connection = _reading[-1]
    table = connection._table
    if table is None:
        connection._table = table = {}
    canonical = _CANONICAL.get(name)
    if canonical is None:
        canonical = canonical_name(name)
    values = table.get(canonical)
    if values is None:
        table[canonical] = [value]
    else:
        values.append(value)


def _on_headers_complete() -> None:
    _reading[-1].on_headers_complete()


def _on_body(body: bytes) -> None:
    connection = _reading[-1]
    response = connection._response
    if response is not None and not connection._discard:
        response.body_data(body)


def _on_message_complete() -> None:
    _reading[-1].on_message_complete()


#: What every parser calls back: plain functions shared by all connections
#: (a parser keeps its protocol's callbacks, and bound methods would cost
#: five objects per connection; idle watchers keep thousands).
_CALLBACKS = SimpleNamespace(
    on_message_begin=_on_message_begin,
    on_header=_on_header,
    on_headers_complete=_on_headers_complete,
    on_body=_on_body,
    on_message_complete=_on_message_complete,
)


#: What an answered long poll keeps instead of its own fired Deferred.
_ANSWERED: Deferred[Any] = Deferred()
_ANSWERED.callback(None)


class ParseError(Exception):
    """
    An answer that is not valid HTTP/1.1 (or has headers that are too long).
    """


class TruncatedBody(Exception):
    """
    The connection closed before the end of a body whose length was known.
    """


class ConnectionOwner(TypingProtocol):
    """
    What a connection reports to: the pool.
    """

    def released(self, connection: HTTP11Connection) -> None:
        """
        An answer ended and the connection may carry another request.

        :param connection: the connection.
        """

    def retire(self, connection: HTTP11Connection) -> None:
        """
        The connection will close: no request may be given to it any more.

        :param connection: the connection.
        """

    def lost(
        self, connection: HTTP11Connection, reason: Failure, unanswered: list[PendingRequest]
    ) -> None:
        """
        The connection closed with requests that got no byte of an answer.

        :param connection: the connection.
        :param reason: why it closed.
        :param unanswered: those requests, in the order they were sent
            (the first was being answered).
        """


class HTTP11Connection(Protocol):
    """
    One keep-alive HTTP/1.1 connection to one member.

    :param owner: the pool it belongs to.
    :param host: the ``Host`` header of its requests.
    :param key: the member it goes to (for the owner).
    :ivar queue: the requests sent and not yet answered, oldest first.
    :ivar served: how many answers it carried to their end.
    :ivar reusable: whether it may carry another request.
    :ivar idle_since: when it last became idle (set by the owner).
    :ivar polling: whether it carries a long poll (set by the owner).
    :ivar retired: whether the owner stopped giving it requests.
    :ivar extra: header lines added to each request (set by the owner).
    :ivar explicit_keep_alive: whether an answer keeps the connection only
        when it says ``keep-alive`` (set by the owner for HTTP proxies, some
        of which close after every answer without saying so).
    """

    def __init__(self, owner: ConnectionOwner, host: bytes, key: Any = None) -> None:
        self.owner = owner
        self.host = host
        self.key = key
        self.queue: list[PendingRequest] = []  # short: a list is smaller than a deque
        self.served = 0
        self.connected = False
        self.reusable = True
        self.aborted = False
        self._closed: Deferred[None] | None = None
        self.idle_since = 0.0
        self.polling = False
        self.retired = False
        self.extra = b""
        self.explicit_keep_alive = False
        self._parser = HttpResponseParser(_CALLBACKS)
        self._table: dict[bytes, list[bytes]] | None = None  # made at the first header
        self._in_headers = False
        self._header_bytes = 0
        self._informational = False
        self._response: PoolResponse | None = None
        self._until_close = False
        self._keep_alive = True
        self._discard = False
        self._out: list[bytes] | None = None  # request bytes gathered during a read

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"<HTTP11Connection {self.host!r} {state} in_flight={len(self.queue)}>"

    # -- sending -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True

    def send(self, request: PendingRequest, now: bool = False) -> None:
        """
        Send a request on this connection (after those already in flight).

        :param request: the request.
        :param now: send it at once if the connection is idle (see
            :mod:`~txetcd2._transport.immediate`) rather than at the
            reactor's next turn: for a request that nothing else is in
            flight with (many requests written in one turn go out together).

        A request without a body (not a long poll) given while answers are
        being read (by a callback of an answer) is gathered, and the bytes
        gathered for each connection are sent at once, together, when the
        read ends: no wait for the reactor's next turn, and no asking epoll
        to watch the socket for writing and then to stop.
        """
        request.connection = self
        request.state = "sent"
        request.reused = self.served > 0
        request.behind = bool(self.queue)
        now = now and not self.queue
        self.queue.append(request)
        producer = request.producer
        if producer is None:
            length = 0 if request.method in WITH_BODY else None
            head = request_head(
                request.method, request.target, self.host, request.headers, length, self.extra
            )
            if _reading and not request.long_poll:
                out = self._out
                if out is None:
                    self._out = [head]
                    _gathered.append(self)
                else:
                    out.append(head)
            elif now:
                send_now(self.transport, head)
            else:
                self.transport.write(head)  # type: ignore[union-attr]
            return
        if self._out is not None:
            self.send_gathered()  # what was gathered goes first
        length = producer.length
        head = request_head(
            request.method, request.target, self.host, request.headers, length, self.extra
        )
        writer = BodyWriter(self.transport, head, length is UNKNOWN_LENGTH, now)
        producing = producer.startProducing(writer)
        writer.flush()
        producing.addCallbacks(
            self._body_written,
            self._body_failed,
            callbackArgs=(request, writer),
            errbackArgs=(request,),
        )

    def send_gathered(self) -> None:
        """Send the request bytes gathered during a read, if any."""
        out = self._out
        if out is not None:
            self._out = None
            if self.transport is not None:
                send_now(self.transport, out[0] if len(out) == 1 else b"".join(out))

    def _body_written(self, _: object, request: PendingRequest, writer: BodyWriter) -> None:
        if request.body_done:
            return  # the answer came first, and the connection closes
        writer.finish()
        request.body_done = True
        request.producer = None

    def _body_failed(self, failure: Failure, request: PendingRequest) -> None:
        if request.body_done or request.state == "answered":
            return  # stopped because the answer came first
        request.body_done = True
        request.fail(Failure(RequestGenerationFailed([failure])))
        self.abort()

    # -- receiving -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._discard:
            return
        if not self.queue:
            self._parse_error("the server sent bytes no request asked for")
            return
        self.queue[0].touched = True
        _reading.append(self)
        failed = None
        try:
            self._parser.feed_data(data)
        except HttpParserError as e:
            failed = f"invalid HTTP answer: {e}"
        except HttpParserUpgrade:
            failed = "the server switched protocols, which this client does not do"
        finally:
            _reading.pop()
            if _gathered and not _reading:
                _send_gathered()
        if failed is not None:
            self._parse_error(failed)
            return
        if self._in_headers:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._parse_error(f"the answer's headers are over {MAX_HEADER_BYTES} bytes")

    def on_message_begin(self) -> None:
        if self.queue:
            self.queue[0].touched = True
        self._in_headers = True
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_headers = False
        table, self._table = self._table or {}, None
        if self._discard:
            return
        code: int = self._parser.get_status_code()
        if code < 200 and code != 101:
            self._informational = True  # 100 Continue and the like
            return
        request = self.queue[0]
        headers = headers_of(table)
        length: int | object = UNKNOWN_LENGTH
        coding = table.get(b"Transfer-Encoding")
        given = table.get(b"Content-Length")
        chunked = coding is not None and b"chunked" in b",".join(coding).lower()
        if not chunked and given is not None and given[-1].strip().isdigit():
            length = int(given[-1])
        head = request.method == b"HEAD"
        if head or code in (204, 304):
            length = 0
        self._until_close = not head and not chunked and length is UNKNOWN_LENGTH
        self._keep_alive = self._parser.should_keep_alive()
        if self._keep_alive and self.explicit_keep_alive:
            said: Sequence[bytes] = headers.getRawHeaders(b"connection", []) or (
                headers.getRawHeaders(b"proxy-connection", [])
            )
            self._keep_alive = b"keep-alive" in b",".join(said).lower()
        response = PoolResponse(request, code, RESPONSES.get(code, b""), headers, length, self)
        self._response = response
        if not request.long_poll and not head and type(length) is int and length <= HOLD_BYTES:
            # A short answer of known length: give it once its body is here
            # too (in the same read, nearly always), so that its reader can
            # take the body at once (PoolResponse.complete_body) instead of
            # being fed it; a failure before its end fails the request. (It
            # stays "sent" until then; no attribute of its own: idle watchers
            # keep thousands of connections.)
            return
        request.state = "answered"
        d = request.d
        if request.long_poll:
            # The request stays queued as long as its answer (hours for a watch
            # stream, and there may be thousands): keep what the end of the answer
            # needs, not its Deferred (nothing waits on it once it fired) or target.
            request.d = _ANSWERED
            request.target = b""
        if not d.called:
            d.callback(response)
        if head:
            # llhttp would read a body here: end the answer now and close.
            self._keep_alive = False
            self.on_message_complete()
            self._discard = True

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        response = self._response
        if response is None or self._discard:
            return
        self._response = None
        request = self.queue.pop(0)
        self.served += 1
        if not request.body_done:
            # The answer came before the whole body was sent.
            request.body_done = True
            if request.producer is not None:
                request.producer.stopProducing()
            self._keep_alive = False
        if self._keep_alive and self.reusable:
            self.owner.released(self)
        else:
            self.close()
        response.body_end(BODY_DONE)
        if request.state == "sent" and not request.d.called:  # held until now
            request.state = "answered"
            request.d.callback(response)

    # -- the end -------------------------------------------------------------

    def _parse_error(self, message: str) -> None:
        failure = Failure(ResponseFailed([Failure(ParseError(message))]))
        response = self._response
        if response is not None:
            self._response = None
            self._end_body(response, self.queue.pop(0), failure)
        elif self.queue and self.queue[0].touched:
            self.queue.pop(0).fail(failure)
        self.abort()

    def _end_body(self, response: PoolResponse, request: PendingRequest, failure: Failure) -> None:
        # A body that failed: its reader's, or, for an answer held until the
        # end of its body (its request still "sent"), its request's failure.
        response.body_end(failure)
        if request.state == "sent":
            request.fail(failure)

    def pause_reading(self) -> None:
        """Stop reading answers (a body's reader is behind)."""
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        """Read answers again (unless the connection is closing)."""
        transport: Any = self.transport
        if transport is not None and self.connected and not getattr(transport, "disconnecting", 0):
            transport.resumeProducing()

    def close(self) -> None:
        """Close the connection once what was written is sent."""
        self.reusable = False
        self.owner.retire(self)
        if self.transport is not None and self.connected:
            self.transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection at once; what it carried fails."""
        self.reusable = False
        self.aborted = True
        self._discard = True
        self.owner.retire(self)
        if self.transport is not None and self.connected:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self.reusable = False
        self._discard = True
        response = self._response
        if response is not None:
            self._response = None
            request = self.queue.pop(0)
            if self._until_close and not self.aborted:
                response.body_end(Failure(PotentialDataLoss()))
            elif self._until_close:
                response.body_end(Failure(ResponseFailed([reason])))
            else:
                truncated = Failure(ResponseFailed([reason, Failure(TruncatedBody())]))
                self._end_body(response, request, truncated)
        unanswered = list(self.queue)
        self.queue.clear()
        if unanswered and unanswered[0].touched:
            unanswered.pop(0).fail(Failure(ResponseFailed([reason])))
        for request in unanswered:
            if request.producer is not None and not request.body_done:
                request.body_done = True
                request.producer.stopProducing()
        self.owner.lost(self, reason, unanswered)
        if self._closed is not None:
            self._closed.callback(None)

    @property
    def closed(self) -> Deferred[None]:
        """
        A Deferred firing with ``None`` once the connection is gone (at once
        when it is gone already).
        """
        if self._closed is None:
            self._closed = Deferred()
            if not self.connected and self.transport is not None:
                self._closed.callback(None)
        return self._closed


def never_received(reason: Failure) -> Failure:
    """
    The failure of a request that got no byte of an answer.

    :param reason: why the connection closed.
    :returns: a :class:`~twisted.web.client.ResponseNeverReceived` failure.
    """
    return Failure(ResponseNeverReceived([reason]))
