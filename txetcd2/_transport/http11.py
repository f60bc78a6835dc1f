"""
One HTTP/1.1 client connection: request bytes built directly, answers parsed
by ``httptools`` (llhttp, the C parser uvicorn uses).

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

import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from typing import Protocol as TypingProtocol

from httptools import HttpParserError, HttpResponseParser
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import RequestGenerationFailed, ResponseFailed, ResponseNeverReceived
from twisted.web.http import RESPONSES, PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer, IResponse
from zope.interface import implementer

from txetcd2._transport.response import BODY_DONE, PoolResponse, SentRequest

#: The most bytes an answer's status line and headers may take.
MAX_HEADER_BYTES = 64 * 1024

#: Methods that may be sent again when a kept-alive connection was stale.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS"})

#: Methods that always say how long their (possibly empty) body is.
_WITH_BODY = frozenset({b"POST", b"PUT", b"PATCH"})

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")


#: Header names as Twisted's :class:`Headers` spells them, by name as sent.
_CANONICAL: dict[bytes, bytes] = {}

#: How many distinct names :data:`_CANONICAL` keeps (a server may send any).
_MAX_NAMES = 512


def answer_headers(raw: dict[bytes, list[bytes]]) -> Headers:
    """
    Build an answer's :class:`Headers` from the names and values llhttp parsed.

    llhttp has already refused names that are not tokens and values with
    line breaks, so only the names' spelling is normalized (once per name,
    as Twisted spells them), without the per-value checks of the public
    constructor; when :class:`Headers` does not keep its table where it
    used to, the public constructor is used.

    :param raw: values by name, in the order they came.
    :returns: the headers.
    """
    headers = Headers()
    table: Any = getattr(headers, "_rawHeaders", None)
    if not isinstance(table, dict):
        return Headers(raw)  # pragma: no cover - a Twisted without the table
    for name, values in raw.items():
        canonical = _CANONICAL.get(name)
        if canonical is None:
            canonical = next(iter(Headers({name: [b""]}).getAllRawHeaders()))[0]
            if len(_CANONICAL) < _MAX_NAMES:
                _CANONICAL[name] = canonical
        if canonical in table:
            table[canonical].extend(values)
        else:
            table[canonical] = values
    return headers


class ParseError(Exception):
    """
    An answer that is not valid HTTP/1.1 (or has headers that are too long).
    """


class TruncatedBody(Exception):
    """
    The connection closed before the end of a body whose length was known.
    """


def check_request(method: bytes, target: bytes) -> None:
    """
    Refuse a method or request target that would break the request line.

    :param method: the method.
    :param target: the path and query.
    :raises ValueError: for a method that is not a token, or a target with
        spaces, control characters or non-ASCII bytes.
    """
    if _TOKEN.match(method) is None:
        raise ValueError(f"invalid HTTP method {method!r}")
    if _BAD_TARGET.search(target) is not None:
        raise ValueError(f"invalid request target {target!r}: encode it first")


def request_head(
    method: bytes,
    target: bytes,
    host: bytes,
    headers: Headers,
    length: int | object | None,
    extra: bytes = b"",
) -> bytes:
    """
    The request line and headers of one request.

    :param method: the method.
    :param target: the path and query.
    :param host: the ``Host`` header, unless ``headers`` has one.
    :param headers: the request's headers.
    :param length: the body's length, ``UNKNOWN_LENGTH`` for a chunked body,
        or ``None`` for no body.
    :param extra: header lines added to every request (e.g. a proxy's).
    :returns: the bytes up to and including the empty line.
    """
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    if not headers.hasHeader(b"host"):
        parts += (b"Host: ", host, b"\r\n")
    for name, values in headers.getAllRawHeaders():
        for value in values:
            parts += (name, b": ", value, b"\r\n")
    if length is UNKNOWN_LENGTH:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif length is not None:
        parts.append(b"Content-Length: %d\r\n" % length)  # type: ignore[str-format]
    parts += (extra, b"\r\n")
    return b"".join(parts)


class PendingRequest:
    """
    One request, from :meth:`IAgent.request` to its answer's headers.

    :param method: the method.
    :param uri: the whole URL.
    :param target: the path and query.
    :param headers: its headers.
    :param producer: its body, if any.
    :param long_poll: whether it waits for an event (``wait=true``): such
        a request is never pipelined and not counted in a member's cap.
    :param canceller: called with the request when its Deferred is cancelled.
    :ivar d: fires with the answer, once its headers arrived.
    :ivar state: ``waiting`` (for a connection), ``connecting``, ``sent``
        or ``answered``.
    :ivar touched: whether any byte of its answer came.
    :ivar reused: whether it went on a connection that had answered before.
    :ivar behind: whether it was pipelined behind another request.
    :ivar retried: whether it was sent again after a stale connection.
    :ivar resent: whether it was sent again after the request it was
        pipelined behind lost the connection.
    :ivar member: the member it goes to (for the pool).
    :ivar connection: the connection it went on.
    """

    def __init__(
        self,
        method: bytes,
        uri: bytes,
        target: bytes,
        headers: Headers,
        producer: IBodyProducer | None,
        long_poll: bool,
        canceller: Callable[[PendingRequest], None],
    ) -> None:
        self.method = method
        self.uri = uri
        self.target = target
        self.headers = headers
        self.producer = producer
        self.long_poll = long_poll
        self.idempotent = producer is None and method in IDEMPOTENT
        self.pipelined = producer is None and method == b"GET" and not long_poll
        self.d: Deferred[IResponse] = Deferred(self._cancelled)
        self._canceller = canceller
        self.state = "waiting"
        self.touched = False
        self.reused = False
        self.behind = False
        self.retried = False
        self.resent = False
        self.member: Any = None
        self.body_done = producer is None
        self.connection: HTTP11Connection | None = None
        self.connecting: Deferred[Any] | None = None

    def __repr__(self) -> str:
        return f"<PendingRequest {self.method.decode()} {self.uri!r} {self.state}>"

    def _cancelled(self, d: Deferred[IResponse]) -> None:
        self._canceller(self)

    def fail(self, failure: Failure) -> None:
        """
        Fail the request, unless it was answered or failed already.

        :param failure: the failure.
        """
        if not self.d.called:
            self.state = "failed"
            self.d.errback(failure)


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


@implementer(IConsumer)
class _BodyWriter:
    """
    Writes a request's body to the connection, chunked when its length is unknown.

    Bytes written while the producer starts are gathered with the head, so
    a body produced at once goes out in one write with it.
    """

    def __init__(self, transport: Any, head: bytes, chunked: bool) -> None:
        self._transport = transport
        self._gathered: list[bytes] | None = [head]
        self._chunked = chunked

    def write(self, data: bytes) -> None:
        if self._chunked:
            if not data:
                return
            data = b"%x\r\n%s\r\n" % (len(data), data)
        if self._gathered is not None:
            self._gathered.append(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send what was gathered; write through from now on."""
        if self._gathered is not None:
            gathered, self._gathered = self._gathered, None
            self._transport.write(b"".join(gathered))

    def finish(self) -> None:
        """End a chunked body."""
        self.flush()
        if self._chunked:
            self._transport.write(b"0\r\n\r\n")

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self.flush()
        self._transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._transport.unregisterProducer()


class HTTP11Connection(Protocol):
    """
    One keep-alive HTTP/1.1 connection to one member.

    :param owner: the pool it belongs to.
    :param host: the ``Host`` header of its requests.
    :param key: the member it goes to (for the owner).
    :ivar queue: the requests sent and not yet answered, oldest first.
    :ivar served: how many answers it carried to their end.
    :ivar reusable: whether it may carry another request.
    :ivar closed: fires with ``None`` once the connection is gone.
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
        self.queue: deque[PendingRequest] = deque()
        self.served = 0
        self.connected = False
        self.reusable = True
        self.aborted = False
        self.closed: Deferred[None] = Deferred()
        self.idle_since = 0.0
        self.polling = False
        self.retired = False
        self.extra = b""
        self.explicit_keep_alive = False
        self._parser = HttpResponseParser(self)
        self._raw: dict[bytes, list[bytes]] = {}
        self._in_headers = False
        self._header_bytes = 0
        self._informational = False
        self._response: PoolResponse | None = None
        self._until_close = False
        self._keep_alive = True
        self._discard = False

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"<HTTP11Connection {self.host!r} {state} in_flight={len(self.queue)}>"

    # -- sending -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True

    def send(self, request: PendingRequest) -> None:
        """
        Send a request on this connection (after those already in flight).

        :param request: the request.
        """
        request.connection = self
        request.state = "sent"
        request.reused = self.served > 0
        request.behind = bool(self.queue)
        self.queue.append(request)
        producer = request.producer
        if producer is None:
            length = 0 if request.method in _WITH_BODY else None
            head = request_head(
                request.method, request.target, self.host, request.headers, length, self.extra
            )
            self.transport.write(head)  # type: ignore[union-attr]
            return
        length = producer.length
        head = request_head(
            request.method, request.target, self.host, request.headers, length, self.extra
        )
        writer = _BodyWriter(self.transport, head, length is UNKNOWN_LENGTH)
        producing = producer.startProducing(writer)
        writer.flush()
        producing.addCallbacks(
            self._body_written,
            self._body_failed,
            callbackArgs=(request, writer),
            errbackArgs=(request,),
        )

    def _body_written(self, _: object, request: PendingRequest, writer: _BodyWriter) -> None:
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
        try:
            self._parser.feed_data(data)
        except HttpParserError as e:
            self._parse_error(f"invalid HTTP answer: {e}")
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

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.setdefault(name, []).append(value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        raw, self._raw = self._raw, {}
        if self._discard:
            return
        code: int = self._parser.get_status_code()
        if code < 200 and code != 101:
            self._informational = True  # 100 Continue and the like
            return
        request = self.queue[0]
        headers = answer_headers(raw)
        length: int | object = UNKNOWN_LENGTH
        coding = headers.getRawHeaders(b"transfer-encoding")
        chunked = coding is not None and b"chunked" in b",".join(coding).lower()
        if not chunked:
            given = headers.getRawHeaders(b"content-length")
            if given is not None and given[-1].strip().isdigit():
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
        sent = SentRequest(request.method, request.uri, request.headers)
        response = PoolResponse(sent, code, RESPONSES.get(code, b""), headers, length, self)
        self._response = response
        request.state = "answered"
        if not request.d.called:
            request.d.callback(response)
        if head:
            # llhttp would read a body here: end the answer now and close.
            self._keep_alive = False
            self.on_message_complete()
            self._discard = True

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is not None and not self._discard:
            response.body_data(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        response = self._response
        if response is None or self._discard:
            return
        self._response = None
        request = self.queue.popleft()
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

    # -- the end -------------------------------------------------------------

    def _parse_error(self, message: str) -> None:
        failure = Failure(ResponseFailed([Failure(ParseError(message))]))
        response = self._response
        if response is not None:
            self._response = None
            self.queue.popleft()
            response.body_end(failure)
        elif self.queue and self.queue[0].touched:
            self.queue.popleft().fail(failure)
        self.abort()

    def pause_reading(self) -> None:
        """Stop reading answers (a body's reader is behind)."""
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        """Read answers again."""
        if self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

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
            self.queue.popleft()
            if self._until_close and not self.aborted:
                response.body_end(Failure(PotentialDataLoss()))
            elif self._until_close:
                response.body_end(Failure(ResponseFailed([reason])))
            else:
                response.body_end(Failure(ResponseFailed([reason, Failure(TruncatedBody())])))
        unanswered = list(self.queue)
        self.queue.clear()
        if unanswered and unanswered[0].touched:
            unanswered.pop(0).fail(Failure(ResponseFailed([reason])))
        for request in unanswered:
            if request.producer is not None and not request.body_done:
                request.body_done = True
                request.producer.stopProducing()
        self.owner.lost(self, reason, unanswered)
        self.closed.callback(None)


def never_received(reason: Failure) -> Failure:
    """
    The failure of a request that got no byte of an answer.

    :param reason: why the connection closed.
    :returns: a :class:`~twisted.web.client.ResponseNeverReceived` failure.
    """
    return Failure(ResponseNeverReceived([reason]))
