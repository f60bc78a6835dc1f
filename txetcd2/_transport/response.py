"""
The answers of the agent pool: an :class:`~twisted.web.iweb.IResponse` whose
body streams to its reader, with back-pressure on the connection.

Body bytes that arrive before :meth:`PoolResponse.deliverBody` is called are
kept, and handed over when it is; after that they go straight to the reader.
The reader's transport pauses and resumes the connection, and stopping it
aborts the connection (as Twisted's own body transport does).
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IProtocol, IPushProducer
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IClientRequest, IResponse
from zope.interface import implementer

from txetcd2._logs import PublicLogger

#: How every complete body ends (shared, as Twisted shares ``connectionDone``).
BODY_DONE = Failure(ResponseDone("Response body fully received"))

#: The reader of a body taken whole by :meth:`PoolResponse.complete_body`.
_TAKEN: IProtocol = TwistedProtocol()


class BodySource(Protocol):
    """
    What a body's transport drives: the connection the body comes from.
    """

    def pause_reading(self) -> None:
        """Stop reading from the connection."""

    def resume_reading(self) -> None:
        """Read from the connection again."""

    def abort(self) -> None:
        """Drop the connection."""


@implementer(IPushProducer)
class BodyTransport:
    """
    The transport a body reader is given.

    Pausing it pauses the connection; stopping it (or calling
    ``abortConnection``/``loseConnection``) drops the connection, which
    ends the body with a failure. Once the body ended it does nothing.

    :param source: the connection.
    """

    __slots__ = ("_paused", "_source")

    def __init__(self, source: BodySource) -> None:
        self._source: BodySource | None = source
        self._paused = False

    def detach(self) -> None:
        """
        Stop driving the connection: the body has ended. A connection its
        reader left paused reads again (for the answers after this one).
        """
        source, self._source = self._source, None
        if source is not None and self._paused:
            self._paused = False
            source.resume_reading()

    def pauseProducing(self) -> None:
        """Stop reading the body for now (the connection is paused)."""
        if self._source is not None and not self._paused:
            self._paused = True
            self._source.pause_reading()

    def resumeProducing(self) -> None:
        """Read the body again."""
        if self._source is not None and self._paused:
            self._paused = False
            self._source.resume_reading()

    def stopProducing(self) -> None:
        """Give up the body: the connection is dropped."""
        if self._source is not None:
            source, self._source = self._source, None
            source.abort()

    abortConnection = stopProducing
    loseConnection = stopProducing


class AnsweredRequest(Protocol):
    """
    What an answer is given about its request (the pool's pending request).
    """

    method: bytes
    uri: bytes
    headers: Headers


@implementer(IClientRequest)
class SentRequest:
    """
    What an answer says about its request.

    :param method: the method.
    :param absoluteURI: the URL.
    :param headers: the request's headers (as given, without ``Host``).
    """

    __slots__ = ("absoluteURI", "headers", "method")

    def __init__(self, method: bytes, absoluteURI: bytes, headers: Headers) -> None:
        self.method = method
        self.absoluteURI = absoluteURI
        self.headers = headers


@implementer(IResponse)
class PoolResponse:
    """
    One answer; its body is delivered with :meth:`deliverBody`.

    Its ``request`` (a :class:`SentRequest`) and its body's transport are
    made when asked for: a short answer read whole never needs them.

    :param request: the request it answers.
    :param code: the status code.
    :param phrase: the reason phrase.
    :param headers: the headers.
    :param length: the body's length from ``Content-Length``, or
        :data:`~twisted.web.iweb.UNKNOWN_LENGTH`.
    :param source: the connection the body comes from.
    """

    log = PublicLogger(namespace="txetcd2.transport")
    version = (b"HTTP", 1, 1)
    __slots__ = (
        "_end",
        "_kept",
        "_reader",
        "_request",
        "_sent",
        "_source",
        "_transport",
        "code",
        "headers",
        "length",
        "phrase",
        "previousResponse",
    )  # fmt: skip

    def __init__(
        self,
        request: AnsweredRequest,
        code: int,
        phrase: bytes,
        headers: Headers,
        length: int | object,
        source: BodySource,
    ) -> None:
        self._sent = request
        self._request: SentRequest | None = None
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.length = length
        self.previousResponse: IResponse | None = None
        self._source = source
        self._transport: BodyTransport | None = None
        self._reader: IProtocol | None = None
        self._kept: list[bytes] | None = None  # made for the first bytes before deliverBody
        self._end: Failure | None = None

    @property
    def request(self) -> SentRequest:
        """
        The request it answers (:class:`~twisted.web.iweb.IClientRequest`).
        """
        if self._request is None:
            sent = self._sent
            self._request = SentRequest(sent.method, sent.uri, sent.headers)
        return self._request

    def __repr__(self) -> str:
        length = "unknown" if self.length is UNKNOWN_LENGTH else self.length
        return f"<PoolResponse {self.code} length={length}>"

    def setPreviousResponse(self, response: IResponse) -> None:
        """
        Remember the answer that redirected here.

        :param response: that answer.
        """
        self.previousResponse = response

    def deliverBody(self, protocol: IProtocol) -> None:
        """
        Hand the body to ``protocol``: kept bytes at once, the rest as it comes.

        :param protocol: the reader; its ``connectionLost`` gets
            :class:`~twisted.web.client.ResponseDone` for a complete body,
            :class:`~twisted.web.http.PotentialDataLoss` for a body read
            until the connection closed, or
            :class:`~twisted.web.client.ResponseFailed` for a cut one.
        :raises RuntimeError: when the body was delivered already.
        """
        if self._reader is not None:
            raise RuntimeError("the body of this answer was delivered already")
        self._reader = protocol
        self._transport = BodyTransport(self._source)
        protocol.makeConnection(self._transport)  # type: ignore[arg-type]
        kept, self._kept = self._kept, None
        for data in kept or ():
            self._feed(protocol, data)
        if self._end is not None:
            self._transport.detach()
            protocol.connectionLost(self._end)

    def complete_body(self) -> bytes | None:
        """
        Take the whole body at once, when it is here already and complete.

        :returns: the body, which is then delivered (as by
            :meth:`deliverBody`); ``None`` when it is not complete yet, or
            was delivered already.
        """
        if self._end is not BODY_DONE or self._reader is not None:
            return None
        self._reader = _TAKEN
        kept, self._kept = self._kept, None
        if kept is None:
            return b""
        return kept[0] if len(kept) == 1 else b"".join(kept)

    def body_data(self, data: bytes) -> None:
        """
        Take bytes of the body (from the connection).

        :param data: the bytes.
        """
        reader = self._reader
        if reader is None:
            if self._kept is None:
                self._kept = []
            self._kept.append(data)
        else:
            self._feed(reader, data)

    def body_end(self, reason: Failure) -> None:
        """
        End the body (from the connection).

        :param reason: why it ended.
        """
        if self._end is not None:
            return
        self._end = reason
        if self._reader is not None:
            if self._transport is not None:
                self._transport.detach()
            self._reader.connectionLost(reason)

    def _feed(self, reader: IProtocol, data: bytes) -> None:
        try:
            reader.dataReceived(data)
        except Exception:
            self.log.failure("the reader of a {code} answer's body failed", code=self.code)
            if self._transport is not None:
                self._transport.stopProducing()
