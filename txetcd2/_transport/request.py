"""
What goes on the wire for a request, and a request's state until its answer.

Request bytes are built directly (request line, ``Host``, the caller's
headers, the body's framing); a body produced at once goes out in the same
write as the head.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer, IResponse
from zope.interface import implementer

from txetcd2._transport.immediate import send_now

if TYPE_CHECKING:
    from txetcd2._transport.http11 import HTTP11Connection

#: Methods that may be sent again when a kept-alive connection was stale.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS"})

#: Methods that always say how long their (possibly empty) body is.
WITH_BODY = frozenset({b"POST", b"PUT", b"PATCH"})

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_METHODS = frozenset({b"GET", b"HEAD", b"PUT", b"POST", b"DELETE", b"PATCH", b"OPTIONS"})
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")


def check_request(method: bytes, target: bytes) -> None:
    """
    Refuse a method or request target that would break the request line.

    :param method: the method.
    :param target: the path and query.
    :raises ValueError: for a method that is not a token, or a target with
        spaces, control characters or non-ASCII bytes.
    """
    if method not in _METHODS and _TOKEN.match(method) is None:
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
    :param alone: whether it is a read that may be slow to answer: one with
        ``quorum=true`` (etcd answers it through its raft log, as it does a
        write) or ``recursive=true`` (a listing may be a whole tree). Such a
        read is never pipelined, so that no read waits behind it on its
        connection (etcd answers a connection's requests one at a time).
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

    __slots__ = (
        "_canceller",
        "behind",
        "body_done",
        "connecting",
        "connection",
        "d",
        "headers",
        "idempotent",
        "long_poll",
        "member",
        "method",
        "pipelined",
        "producer",
        "resent",
        "retried",
        "reused",
        "state",
        "target",
        "touched",
        "uri",
    )  # fmt: skip

    def __init__(
        self,
        method: bytes,
        uri: bytes,
        target: bytes,
        headers: Headers,
        producer: IBodyProducer | None,
        long_poll: bool,
        canceller: Callable[[PendingRequest], None],
        alone: bool = False,
    ) -> None:
        self.method = method
        self.uri = uri
        self.target = target
        self.headers = headers
        self.producer = producer
        self.long_poll = long_poll
        self.idempotent = producer is None and method in IDEMPOTENT
        self.pipelined = producer is None and method == b"GET" and not long_poll and not alone
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


@implementer(IConsumer)
class BodyWriter:
    """
    Writes a request's body to the connection, chunked when its length is unknown.

    Bytes written while the producer starts are gathered with the head, so
    a body produced at once goes out in one write with it.

    :param transport: the connection's transport.
    :param head: the request's head.
    :param chunked: whether the body is sent in chunks (its length is unknown).
    :param now: whether the connection is idle, so that the gathered bytes
        may be sent at once (:func:`~txetcd2._transport.immediate.send_now`).
    """

    def __init__(self, transport: Any, head: bytes, chunked: bool, now: bool = False) -> None:
        self._transport = transport
        self._gathered: list[bytes] | None = [head]
        self._chunked = chunked
        self._now = now

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
            if self._now:
                send_now(self._transport, b"".join(gathered))
            else:
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
