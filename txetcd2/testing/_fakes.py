"""
In-memory fakes for deterministic unit tests: an agent that records requests
and answers them the way the test says.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from zope.interface import implementer


class _Collector:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def registerProducer(self, producer: object, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


class FakeTransport:
    """
    The transport a fake body is delivered over; records aborts.
    """

    def __init__(self, response: FakeResponse) -> None:
        self._response = response
        self.aborted = False

    def abortConnection(self) -> None:
        """
        Abort the connection.

        As with a real transport, the protocol learns of it later: on the
        response's clock after 0 seconds when it has one, else when the
        test calls :meth:`FakeResponse.fail`.
        """
        if self.aborted:
            return
        self.aborted = True
        if self._response.clock is not None:
            self._response.clock.callLater(
                0, self._response.fail, ConnectionLost("aborted by the client")
            )

    def loseConnection(self) -> None:
        """
        Close the connection: same as an abort here.
        """
        self.abortConnection()

    def stopProducing(self) -> None:
        """
        Stop the body: same as an abort here.
        """
        self.abortConnection()


@implementer(IResponse)
class FakeResponse:
    """
    An answer whose body the test pushes in chunks.

    :param code: the HTTP status.
    :param headers: the headers.
    """

    version = (b"HTTP", 1, 1)
    previousResponse = None
    request = None

    def __init__(self, code: int, headers: Headers, clock: IReactorTime | None = None) -> None:
        self.clock = clock
        self.code = code
        self.phrase = b"OK" if code < 400 else b"Error"
        self.headers = headers
        self.length = UNKNOWN_LENGTH
        self._protocol: IProtocol | None = None
        self._buffer: list[bytes] = []
        self._end: Failure | None = None
        self.transport = FakeTransport(self)

    def deliverBody(self, protocol: IProtocol) -> None:
        self._protocol = protocol
        protocol.makeConnection(self.transport)  # type: ignore[arg-type]
        for chunk in self._buffer:
            protocol.dataReceived(chunk)
        self._buffer = []
        if self._end is not None:
            protocol.connectionLost(self._end)

    def setPreviousResponse(self, response: IResponse) -> None:
        pass

    @property
    def ended(self) -> bool:
        """
        Whether the body ended (normally or not).
        """
        return self._end is not None

    def write(self, data: bytes) -> None:
        """
        Push a chunk of the body.

        :param data: the bytes.
        """
        if self._end is not None:
            return
        if self._protocol is None:
            self._buffer.append(data)
        else:
            self._protocol.dataReceived(data)

    def finish(self) -> None:
        """
        End the body normally.
        """
        self._stop(Failure(ResponseDone()))

    def fail(self, error: Exception | None = None) -> None:
        """
        End the body abnormally (a truncated answer).

        :param error: the reason (default: the connection closed).
        """
        self._stop(Failure(error or ConnectionDone()))

    def _stop(self, reason: Failure) -> None:
        if self._end is not None:
            return
        self._end = reason
        if self._protocol is not None:
            self._protocol.connectionLost(reason)


def _modified_index(body: object) -> int:
    node = body.get("node") if isinstance(body, dict) else None
    index = node.get("modifiedIndex") if isinstance(node, dict) else None
    return index if isinstance(index, int) and index > 0 else 1


@attrs.define(eq=False)
class FakeRequest:
    """
    One request the agent received, waiting for the test to answer it.

    :ivar method: the method.
    :ivar uri: the full URI.
    :ivar headers: the request headers.
    :ivar body: the request body.
    :ivar deferred: fires with the answer.
    :ivar cancelled: whether the client cancelled it before an answer.
    """

    method: str
    uri: str
    headers: Headers
    body: bytes
    deferred: Deferred[IResponse]
    cancelled: bool = False
    response: FakeResponse | None = None
    clock: IReactorTime | None = None

    @property
    def netloc(self) -> str:
        """
        The ``scheme://host:port`` the request went to.
        """
        scheme, rest = self.uri.split("://", 1)
        return f"{scheme}://{rest.split('/', 1)[0]}"

    @property
    def target(self) -> str:
        """
        The path and query of the request.
        """
        return "/" + self.uri.split("://", 1)[1].split("/", 1)[1]

    def respond(
        self,
        code: int = 200,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        finish: bool = True,
    ) -> FakeResponse:
        """
        Answer the request.

        :param code: the HTTP status.
        :param body: the body (a dict is sent as JSON).
        :param headers: the headers (``Content-Type`` defaults to JSON; a
            ``200``/``201`` gets an ``X-Etcd-Index``, as etcd always sends one:
            the body's ``node.modifiedIndex``, else 1; pass
            ``{"x-etcd-index": ""}`` to leave it out).
        :param finish: end the body after it (``False`` keeps it open, for streams).
        :returns: the response, to push more of the body.
        """
        all_headers = {"content-type": "application/json"}
        if code in (200, 201):
            all_headers["x-etcd-index"] = str(_modified_index(body))
        all_headers.update(headers or {})
        all_headers = {k: v for k, v in all_headers.items() if v != ""}
        response = FakeResponse(
            code, Headers({k: [v] for k, v in all_headers.items()}), self.clock
        )
        self.response = response
        if self.cancelled:
            # The client gave up on it: like a real agent, drop the late answer.
            return response
        self.deferred.callback(response)
        if body is not None:
            response.write(json.dumps(body).encode() if isinstance(body, dict) else body)
        if finish:
            response.finish()
        return response

    def refuse(self) -> None:
        """
        Fail the request as if the member refused the connection.
        """
        if self.cancelled:
            return
        self.deferred.errback(ConnectionRefusedError("connection refused"))

    def fail(self, error: Exception) -> None:
        """
        Fail the request with an error.

        :param error: the error.
        """
        if self.cancelled:
            return
        self.deferred.errback(error)


@implementer(IAgent)
class RecordingAgent:
    """
    An agent that records every request; the test answers each one.

    :param clock: the clock on which aborted bodies report their end.
    :ivar requests: the requests received, oldest first.
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        self.requests: list[FakeRequest] = []
        self.clock = clock

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        body = b""
        if bodyProducer is not None:
            collector = _Collector()
            bodyProducer.startProducing(collector)
            body = b"".join(collector.chunks)

        def cancel(d: Deferred[IResponse]) -> None:
            entry.cancelled = True

        entry = FakeRequest(
            method.decode("ascii"),
            uri.decode("ascii"),
            headers if headers is not None else Headers(),
            body,
            Deferred(cancel),
            clock=self.clock,
        )
        self.requests.append(entry)
        return entry.deferred

    def pending(self) -> list[FakeRequest]:
        """
        The requests not answered or cancelled yet.

        :returns: the requests, oldest first.
        """
        return [r for r in self.requests if not r.deferred.called]

    def pop(self) -> FakeRequest:
        """
        The single pending request (fails if there is not exactly one).

        :returns: the request.
        """
        waiting = self.pending()
        assert len(waiting) == 1, f"expected one pending request, got {waiting}"
        return waiting[0]


def node_body(
    action: str, key: str, value: str | None, index: int, **extra: Any
) -> dict[str, Any]:
    """
    Build an etcd key-space answer document.

    :param action: the action.
    :param key: the key.
    :param value: the value.
    :param index: the created and modified index.
    :param extra: more node fields.
    :returns: the document.
    """
    node: dict[str, Any] = {"key": key, "createdIndex": index, "modifiedIndex": index}
    if value is not None:
        node["value"] = value
    node.update(extra)
    return {"action": action, "node": node}


def error_body(code: int, message: str, cause: str = "", index: int = 0) -> dict[str, Any]:
    """
    Build an etcd error document.

    :param code: errorCode.
    :param message: message.
    :param cause: cause.
    :param index: index.
    :returns: the document.
    """
    return {"errorCode": code, "message": message, "cause": cause, "index": index}
