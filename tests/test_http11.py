"""
Unit tests for one HTTP/1.1 connection of the agent pool: request bytes,
answers parsed by httptools however they are cut, and every way an answer
can go wrong.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import (
    RequestGenerationFailed,
    ResponseDone,
    ResponseFailed,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer, IResponse
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txetcd2._transport.agent import BytesProducer
from txetcd2._transport.exchange import read_body
from txetcd2._transport.http11 import (
    HOLD_BYTES,
    MAX_HEADER_BYTES,
    HTTP11Connection,
    ParseError,
    TruncatedBody,
)
from txetcd2._transport.lines import EventStream
from txetcd2._transport.request import PendingRequest, check_request, request_head
from txetcd2._transport.response import PoolResponse

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Etcd-Index: 7\r\n\r\nhello"
#: The same answer chunked: given at its headers, its body streamed (not held).
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"


class Owner:
    """
    Records what a connection reports to its pool.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def released(self, connection: HTTP11Connection) -> None:
        self.events.append(("released", connection))

    def retire(self, connection: HTTP11Connection) -> None:
        self.events.append(("retire", connection))

    def lost(
        self, connection: HTTP11Connection, reason: Failure, unanswered: list[PendingRequest]
    ) -> None:
        self.events.append(("lost", [r.target for r in unanswered]))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


class Reader(Protocol):
    """
    A body reader that records what it gets.
    """

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason


@implementer(IBodyProducer)
class SlowProducer:
    """
    A body producer that writes when told to, with an unknown length.
    """

    def __init__(self, length: Any = UNKNOWN_LENGTH) -> None:
        self.length = length
        self.consumer: IConsumer | None = None
        self.finished: Deferred[None] = Deferred()
        self.stopped = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self.consumer = consumer
        return self.finished

    def stopProducing(self) -> None:
        self.stopped = True

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


def _request(
    method: bytes = b"GET", target: bytes = b"/v2/keys/a", producer: Any = None
) -> PendingRequest:
    uri = b"http://127.0.0.1:2379" + target
    return PendingRequest(
        method, uri, target, Headers({b"accept": [b"*/*"]}), producer, False, lambda r: None
    )


def _open() -> tuple[HTTP11Connection, StringTransport, Owner]:
    owner = Owner()
    connection = HTTP11Connection(owner, b"127.0.0.1:2379")
    transport = StringTransport()
    connection.makeConnection(transport)
    return connection, transport, owner


def _bytewise(connection: HTTP11Connection, data: bytes) -> None:
    for i in range(len(data)):
        connection.dataReceived(data[i : i + 1])


class RequestBytesTests(SynchronousTestCase):
    """
    What goes on the wire for a request.
    """

    def test_get(self) -> None:
        """A GET is its request line, Host and its headers, with no body framing."""
        connection, transport, _ = _open()
        connection.send(_request())
        self.assertEqual(
            transport.value(),
            b"GET /v2/keys/a HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nAccept: */*\r\n\r\n",
        )

    def test_given_host_kept(self) -> None:
        """A Host header given with the request replaces the member's."""
        head = request_head(b"GET", b"/", b"a:1", Headers({b"host": [b"b:2"]}), None)
        self.assertEqual(head, b"GET / HTTP/1.1\r\nHost: b:2\r\n\r\n")

    def test_put_in_one_write(self) -> None:
        """A body produced at once goes out in the same write as the head."""
        connection, transport, _ = _open()
        writes: list[bytes] = []
        transport.write = writes.append  # type: ignore[method-assign]
        connection.send(_request(b"PUT", producer=BytesProducer(b"value=1")))
        self.assertEqual(len(writes), 1)
        self.assertTrue(writes[0].endswith(b"Content-Length: 7\r\n\r\nvalue=1"))

    def test_post_without_body(self) -> None:
        """A POST without a body says its length is 0."""
        connection, transport, _ = _open()
        connection.send(_request(b"POST"))
        self.assertIn(b"\r\nContent-Length: 0\r\n\r\n", transport.value())

    def test_chunked_body(self) -> None:
        """A body of unknown length goes out chunked, and ends with the last chunk."""
        connection, transport, _ = _open()
        producer = SlowProducer()
        connection.send(_request(b"PUT", producer=producer))
        assert producer.consumer is not None
        producer.consumer.write(b"abc")
        producer.consumer.write(b"")
        producer.finished.callback(None)
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertEqual(body, b"3\r\nabc\r\n0\r\n\r\n")

    def test_invalid_method_and_target(self) -> None:
        """A method that is not a token, or a target with spaces, is refused."""
        self.assertRaises(ValueError, check_request, b"GE T", b"/")
        self.assertRaises(ValueError, check_request, b"GET", b"/a b")
        self.assertRaises(ValueError, check_request, b"GET", b"/a\r\nX: y")
        check_request(b"GET", b"/v2/keys/a?wait=true&recursive=true")  # accepted


class AnswerTests(SynchronousTestCase):
    """
    Answers as etcd and others send them, however TCP cuts them.
    """

    def test_content_length_byte_by_byte(self) -> None:
        """An answer fed one byte at a time gives its status, headers and body, and
        the connection is released once."""
        connection, _, owner = _open()
        request = _request()
        connection.send(request)
        _bytewise(connection, OK)
        response = self.successResultOf(request.d)
        verifyObject(IResponse, response)
        self.assertEqual((response.code, response.phrase, response.length), (200, b"OK", 5))
        self.assertEqual(response.headers.getRawHeaders(b"x-etcd-index"), [b"7"])
        self.assertEqual(self.successResultOf(read_body(response)), b"hello")
        self.assertEqual(owner.kinds(), ["released"])
        self.assertEqual(connection.served, 1)

    def test_chunked_byte_by_byte(self) -> None:
        """A chunked answer fed one byte at a time gives the whole body."""
        connection, _, owner = _open()
        request = _request()
        connection.send(request)
        _bytewise(
            connection,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        response = self.successResultOf(request.d)
        self.assertEqual(response.length, UNKNOWN_LENGTH)
        self.assertEqual(self.successResultOf(read_body(response)), b"hello world")
        self.assertEqual(owner.kinds(), ["released"])

    def test_read_until_close(self) -> None:
        """A body with no length is read until the connection closes, and ends with
        PotentialDataLoss; the connection is not released."""
        connection, _, owner = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP")
        response = self.successResultOf(request.d)
        reader = Reader()
        response.deliverBody(reader)
        connection.dataReceived(b" request")
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(b"".join(reader.data), b"Client sent an HTTP request")
        assert reader.reason is not None
        self.assertTrue(reader.reason.check(PotentialDataLoss))
        self.assertNotIn("released", owner.kinds())

    def test_head(self) -> None:
        """The answer to HEAD has no body whatever its Content-Length; the connection
        is closed after it."""
        connection, transport, owner = _open()
        request = _request(b"HEAD")
        connection.send(request)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
        response = self.successResultOf(request.d)
        self.assertEqual(response.length, 0)
        self.assertEqual(self.successResultOf(read_body(response)), b"")
        self.assertTrue(transport.disconnecting)
        self.assertIn("retire", owner.kinds())

    def test_no_body_statuses_and_continue(self) -> None:
        """100 Continue is skipped; 204 and 304 have no body; the connection carries
        one answer after another."""
        connection, _, owner = _open()
        first, second = _request(target=b"/1"), _request(target=b"/2")
        connection.send(first)
        connection.dataReceived(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"
        )
        self.assertEqual(self.successResultOf(first.d).code, 204)
        connection.send(second)
        connection.dataReceived(b"HTTP/1.1 304 Not Modified\r\n\r\n")
        response = self.successResultOf(second.d)
        self.assertEqual((response.code, response.length), (304, 0))
        self.assertEqual(self.successResultOf(read_body(response)), b"")
        self.assertEqual(owner.kinds(), ["released", "released"])

    def test_pipelined_answers_cut_anywhere(self) -> None:
        """Two answers in flight, cut across their boundary, each reach their request."""
        connection, transport, owner = _open()
        first, second = _request(target=b"/1"), _request(target=b"/2")
        connection.send(first)
        connection.send(second)
        self.assertEqual(transport.value().count(b"GET /"), 2)
        both = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        connection.dataReceived(both[:30])
        connection.dataReceived(both[30 : len(OK) + 3])
        connection.dataReceived(both[len(OK) + 3 :])
        self.assertEqual(self.successResultOf(read_body(self.successResultOf(first.d))), b"hello")
        self.assertEqual(self.successResultOf(read_body(self.successResultOf(second.d))), b"hi")
        self.assertEqual(owner.kinds(), ["released", "released"])

    def test_body_kept_until_delivered(self) -> None:
        """Body bytes that come before deliverBody are kept and handed over, and a body
        is delivered only once."""
        connection, _, _ = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(OK)
        response = self.successResultOf(request.d)
        reader = Reader()
        response.deliverBody(reader)
        self.assertEqual(reader.data, [b"hello"])
        assert reader.reason is not None
        self.assertTrue(reader.reason.check(ResponseDone))
        self.assertRaises(RuntimeError, response.deliverBody, Reader())


class BrokenAnswerTests(SynchronousTestCase):
    """
    Answers that go wrong, reported as Twisted's Agent reports them.
    """

    def test_closed_before_any_byte(self) -> None:
        """A connection closed before any byte leaves the request unanswered for the
        pool to retry or fail."""
        connection, _, owner = _open()
        request = _request()
        connection.send(request)
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(owner.events[-1], ("lost", [b"/v2/keys/a"]))
        self.assertNoResult(request.d)
        self.assertIsNone(self.successResultOf(connection.closed))

    def test_closed_in_headers(self) -> None:
        """A connection closed after part of the headers fails the request with
        ResponseFailed carrying the reason."""
        connection, _, owner = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Le")
        connection.connectionLost(Failure(ConnectionLost()))
        failure = self.failureResultOf(request.d, ResponseFailed)
        self.assertTrue(failure.value.reasons[0].check(ConnectionLost))
        self.assertEqual(owner.events[-1], ("lost", []))

    def test_cut_body(self) -> None:
        """A streamed body cut before its end ends with ResponseFailed holding the
        reason and TruncatedBody."""
        connection, _, _ = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(CHUNKED[:-9])
        response = self.successResultOf(request.d)
        body = read_body(response)
        connection.connectionLost(Failure(ConnectionDone()))
        failure = self.failureResultOf(body, ResponseFailed)
        self.assertTrue(failure.value.reasons[0].check(ConnectionDone))
        self.assertTrue(failure.value.reasons[1].check(TruncatedBody))

    def test_cut_held_body(self) -> None:
        """A short answer is given only once its body is whole; cut before its
        Content-Length, its request fails with ResponseFailed holding the reason and
        TruncatedBody."""
        connection, _, owner = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(OK[:-2])
        self.assertNoResult(request.d)
        connection.connectionLost(Failure(ConnectionDone()))
        failure = self.failureResultOf(request.d, ResponseFailed)
        self.assertTrue(failure.value.reasons[0].check(ConnectionDone))
        self.assertTrue(failure.value.reasons[1].check(TruncatedBody))
        self.assertEqual(owner.events[-1], ("lost", []))

    def test_held_body_taken_whole(self) -> None:
        """A short answer's body, here whole when the answer is given, is taken at
        once by complete_body(), after which it cannot be delivered again."""
        connection, _, _ = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(OK[:-2])
        connection.dataReceived(OK[-2:])
        response: Any = self.successResultOf(request.d)
        self.assertEqual(response.complete_body(), b"hello")
        self.assertIsNone(response.complete_body())
        self.assertRaises(RuntimeError, response.deliverBody, Reader())

    def test_long_answer_not_held(self) -> None:
        """An answer longer than HOLD_BYTES is given at its headers, its body streamed."""
        connection, _, _ = _open()
        request = _request()
        connection.send(request)
        length = HOLD_BYTES + 1
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nab" % length)
        response: Any = self.successResultOf(request.d)
        self.assertIsNone(response.complete_body())
        reader = Reader()
        response.deliverBody(reader)
        connection.dataReceived(b"c" * (length - 2))
        self.assertEqual(len(b"".join(reader.data)), length)

    def test_bad_chunk_size(self) -> None:
        """A chunk size that is not hexadecimal fails the body with a ParseError and
        aborts the connection."""
        connection, transport, _ = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        body = read_body(self.successResultOf(request.d))
        connection.dataReceived(b"zz\r\nhello\r\n")
        failure = self.failureResultOf(body, ResponseFailed)
        self.assertTrue(failure.value.reasons[0].check(ParseError))
        self.assertTrue(transport.disconnected)

    def test_garbage_status_line(self) -> None:
        """An answer that is not HTTP fails the request with ResponseFailed(ParseError)."""
        connection, transport, _ = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(b"SSH-2.0-OpenSSH\r\n\r\n")
        failure = self.failureResultOf(request.d, ResponseFailed)
        self.assertTrue(failure.value.reasons[0].check(ParseError))
        self.assertTrue(transport.disconnected)

    def test_switching_protocols(self) -> None:
        """A 101 answer is delivered with no body, and the connection (switched to
        another protocol) is aborted rather than reused."""
        connection, transport, owner = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nxx"
        )
        self.assertTrue(transport.disconnected)
        response = self.successResultOf(request.d)
        self.assertEqual(response.code, 101)
        self.assertEqual(self.successResultOf(read_body(response)), b"")
        self.assertIn("retire", owner.kinds())

    def test_oversize_headers(self) -> None:
        """Headers longer than MAX_HEADER_BYTES fail the request and abort the
        connection."""
        connection, transport, _ = _open()
        request = _request()
        connection.send(request)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\n")
        filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        for _ in range(MAX_HEADER_BYTES // len(filler) + 2):
            if transport.disconnected:
                break
            connection.dataReceived(filler)
        failure = self.failureResultOf(request.d, ResponseFailed)
        self.assertIn("headers are over", str(failure.value.reasons[0].value))
        self.assertTrue(transport.disconnected)

    def test_unsolicited_bytes(self) -> None:
        """Bytes that no request asked for abort the connection."""
        connection, transport, owner = _open()
        connection.dataReceived(OK)
        self.assertTrue(transport.disconnected)
        self.assertIn("retire", owner.kinds())

    def test_answer_before_body_sent(self) -> None:
        """An answer that comes before the request body is all sent is delivered, the
        producer is stopped and the connection is not reused."""
        connection, transport, owner = _open()
        producer = SlowProducer(length=100)
        request = _request(b"PUT", producer=producer)
        connection.send(request)
        connection.dataReceived(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.successResultOf(request.d).code, 413)
        self.assertTrue(producer.stopped)
        self.assertTrue(transport.disconnecting)
        self.assertNotIn("released", owner.kinds())
        producer.finished.errback(Failure(CancelledError()))  # the stopped producer gives up
        self.assertTrue(request.d.called)

    def test_producer_fails(self) -> None:
        """A body producer that fails fails the request with RequestGenerationFailed
        and aborts the connection."""
        connection, transport, _ = _open()
        producer = SlowProducer(length=10)
        request = _request(b"PUT", producer=producer)
        connection.send(request)
        producer.finished.errback(Failure(ValueError("no more")))
        failure = self.failureResultOf(request.d, RequestGenerationFailed)
        self.assertTrue(failure.value.reasons[0].check(ValueError))
        self.assertTrue(transport.disconnected)


class BackPressureTests(SynchronousTestCase):
    """
    A body's reader drives the connection.
    """

    def _streaming(self) -> tuple[HTTP11Connection, StringTransport, PoolResponse]:
        connection, transport, _ = _open()
        request = _request(target=b"/v2/keys/a?wait=true&stream=true")
        connection.send(request)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        response: Any = self.successResultOf(request.d)
        self.assertIsInstance(response, PoolResponse)
        return connection, transport, response

    def test_pause_and_resume(self) -> None:
        """Pausing the body's transport pauses the connection; resuming resumes it."""
        _, transport, response = self._streaming()
        reader = Reader()
        response.deliverBody(reader)
        assert reader.transport is not None
        reader.transport.pauseProducing()  # type: ignore[attr-defined]
        self.assertEqual(transport.producerState, "paused")
        reader.transport.resumeProducing()  # type: ignore[attr-defined]
        self.assertEqual(transport.producerState, "producing")

    def test_paused_reader_done(self) -> None:
        """A body that ends while its reader has paused the connection resumes it,
        so the answers after it are read."""
        connection, transport, _ = _open()
        first, second = _request(target=b"/1"), _request(target=b"/2")
        connection.send(first)
        connection.send(second)
        connection.dataReceived(CHUNKED[:-10])
        reader = Reader()
        self.successResultOf(first.d).deliverBody(reader)
        assert reader.transport is not None
        reader.transport.pauseProducing()  # type: ignore[attr-defined]
        self.assertEqual(transport.producerState, "paused")
        connection.dataReceived(CHUNKED[-10:])
        self.assertEqual(transport.producerState, "producing")
        reader.transport.resumeProducing()  # type: ignore[attr-defined]
        self.assertEqual(transport.producerState, "producing")
        connection.dataReceived(OK)
        self.assertEqual(self.successResultOf(read_body(self.successResultOf(second.d))), b"hello")

    def test_stream_lines_and_stop(self) -> None:
        """A watch stream's lines reach an EventStream as they come; aborting it
        aborts the connection and ends the body."""
        connection, transport, response = self._streaming()
        lines: list[bytes] = []
        stream = EventStream(lines.append)
        response.deliverBody(stream)
        connection.dataReceived(b'8\r\n{"a":1}\n\r\n')
        connection.dataReceived(b'4\r\n{"b"\r\n')
        connection.dataReceived(b"4\r\n:2}\n\r\n")
        self.assertEqual(lines, [b'{"a":1}', b'{"b":2}'])
        stream.abort()
        self.assertTrue(transport.disconnected)
        connection.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(stream.ended))
        assert stream.reason is not None
        self.assertTrue(stream.reason.check(ResponseFailed))

    def test_raising_reader(self) -> None:
        """A reader that raises is logged and the connection aborted."""
        connection, transport, response = self._streaming()

        class Raising(Protocol):
            def dataReceived(self, data: bytes) -> None:
                raise RuntimeError("boom")

        response.deliverBody(Raising())
        connection.dataReceived(b"2\r\nab\r\n")
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class AnswerHeadersTests(SynchronousTestCase):
    """
    The answer's Headers, built without the public constructor's per-value work.
    """

    def test_same_as_public_constructor(self) -> None:
        """Names in any case and repeated names give the same Headers as Twisted's
        public constructor."""
        raw = [
            (b"content-LENGTH", b"5"),
            (b"X-Etcd-Index", b"7"),
            (b"x-etcd-index", b"8"),
            (b"Etag", b"e"),
            (b"x-custom-header", b"c"),
        ]
        public = Headers()
        for name, value in raw:
            public.addRawHeader(name, value)
        connection, _, _ = _open()
        request = _request()
        connection.send(request)
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in raw)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\n" + lines + b"\r\nhello")
        built = self.successResultOf(request.d).headers
        self.assertEqual(built, public)
        self.assertEqual(built.getRawHeaders(b"X-ETCD-INDEX"), [b"7", b"8"])
        self.assertEqual(built.getRawHeaders("etag"), ["e"])
        self.assertEqual(built.getRawHeaders(b"X-Custom-Header"), [b"c"])


class ExplicitKeepAliveTests(SynchronousTestCase):
    """
    Through an HTTP proxy, a connection is kept only when the answer says so.
    """

    def test_proxy_answers(self) -> None:
        """An answer without keep-alive closes the connection; one with
        Connection: keep-alive releases it."""
        connection, transport, owner = _open()
        connection.explicit_keep_alive = True
        request = _request()
        connection.send(request)
        connection.dataReceived(OK.replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n"))
        self.assertEqual(
            self.successResultOf(read_body(self.successResultOf(request.d))), b"hello"
        )
        self.assertEqual(owner.kinds(), ["released"])
        request = _request()
        connection.send(request)
        connection.dataReceived(OK)
        self.assertEqual(
            self.successResultOf(read_body(self.successResultOf(request.d))), b"hello"
        )
        self.assertEqual(owner.kinds(), ["released", "retire"])
        self.assertTrue(transport.disconnecting)


class LeanConnectionTests(SynchronousTestCase):
    """
    What a connection keeps per answer: idle watchers keep thousands of them.
    """

    def test_answered_long_poll_keeps_little(self) -> None:
        """A long poll's answer is delivered as any other, and its request then
        keeps neither its Deferred nor its target, while its body still streams
        and its cut still fails the body."""
        connection, _, owner = _open()
        request = PendingRequest(
            b"GET",
            b"http://127.0.0.1:2379/v2/keys/a?wait=true&stream=true",
            b"/v2/keys/a?wait=true&stream=true",
            Headers(),
            None,
            True,
            lambda r: None,
        )
        d = request.d
        connection.send(request)
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        response = self.successResultOf(d)
        self.assertIsNot(request.d, d)
        self.assertTrue(request.d.called)
        self.assertEqual(request.target, b"")
        reader = Reader()
        response.deliverBody(reader)
        connection.dataReceived(b"3\r\n{}\n\r\n")
        self.assertEqual(reader.data, [b"{}\n"])
        connection.connectionLost(Failure(ConnectionLost()))
        assert reader.reason is not None
        self.assertTrue(reader.reason.check(ResponseFailed))
        self.assertEqual(owner.kinds(), ["lost"])

    def test_a_callback_making_another_connection_read(self) -> None:
        """When a callback run by one connection's parser makes another connection
        read (a test's loopback does), each parser's callbacks still reach its own
        connection."""
        first, _, _ = _open()
        second, _, _ = _open()
        one, two = _request(), _request()
        first.send(one)
        second.send(two)
        answers: list[IResponse] = []

        def answered(response: IResponse) -> None:
            answers.append(response)
            second.dataReceived(OK)

        one.d.addCallback(answered)
        first.dataReceived(OK.replace(b"hello", b"world"))
        self.assertEqual(self.successResultOf(read_body(answers[0])), b"world")
        self.assertEqual(self.successResultOf(read_body(self.successResultOf(two.d))), b"hello")
        self.assertEqual((first.served, second.served), (1, 1))


class WritesTransport(StringTransport):
    """
    A transport that records each write.
    """

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


def _open_recording() -> tuple[HTTP11Connection, WritesTransport]:
    connection = HTTP11Connection(Owner(), b"127.0.0.1:2379")
    transport = WritesTransport()
    connection.makeConnection(transport)
    return connection, transport


def _long_poll() -> PendingRequest:
    target = b"/v2/keys/w?wait=true"
    return PendingRequest(
        b"GET", b"http://127.0.0.1:2379" + target, target, Headers(), None, True, lambda r: None
    )


class GatheredWritesTests(SynchronousTestCase):
    """
    Requests given while answers are read (by the answers' callbacks) are
    gathered per connection and written when the read ends, in one write.
    """

    def _answered_then(self, then: Any) -> tuple[HTTP11Connection, WritesTransport]:
        # A connection with one request whose answer's callback calls ``then``.
        connection, transport = _open_recording()
        first = _request(target=b"/v2/keys/first")
        first.d.addCallback(lambda response: then())
        connection.send(first)
        del transport.writes[:]
        return connection, transport

    def test_gathered_until_the_read_ends(self) -> None:
        """Reads given to two connections during a read are not written during it,
        and are written afterwards, one write per connection, in order."""
        other, other_transport = _open_recording()
        seen: list[list[bytes]] = []

        def then() -> None:
            connection.send(_request(target=b"/v2/keys/b"))
            other.send(_request(target=b"/v2/keys/c"))
            connection.send(_request(target=b"/v2/keys/d"))
            seen.append(transport.writes + other_transport.writes)

        connection, transport = self._answered_then(then)
        connection.dataReceived(OK)
        self.assertEqual(seen, [[]])
        self.assertEqual(len(transport.writes), 1)
        lines = transport.value().split(b"\r\n")
        targets = [line.split(b" ")[1] for line in lines if line.endswith(b" HTTP/1.1")]
        self.assertEqual(targets, [b"/v2/keys/first", b"/v2/keys/b", b"/v2/keys/d"])
        self.assertEqual(len(other_transport.writes), 1)
        self.assertTrue(other_transport.writes[0].startswith(b"GET /v2/keys/c HTTP/1.1\r\n"))
        self.assertEqual([r.target for r in connection.queue], [b"/v2/keys/b", b"/v2/keys/d"])

    def test_body_after_gathered(self) -> None:
        """A request with a body given after gathered ones on the same connection
        goes after them: the gathered bytes are written first."""

        def then() -> None:
            connection.send(_request(target=b"/v2/keys/b"))
            connection.send(_request(b"PUT", b"/v2/keys/c", BytesProducer(b"value=1")))

        connection, transport = self._answered_then(then)
        connection.dataReceived(OK)
        self.assertEqual(len(transport.writes), 2)
        self.assertTrue(transport.writes[0].startswith(b"GET /v2/keys/b "))
        self.assertTrue(transport.writes[1].startswith(b"PUT /v2/keys/c "))
        self.assertTrue(transport.writes[1].endswith(b"\r\n\r\nvalue=1"))

    def test_long_poll_not_gathered(self) -> None:
        """A long poll given during a read is written at once."""
        during: list[int] = []

        def then() -> None:
            connection.send(_long_poll())
            during.append(len(transport.writes))

        connection, transport = self._answered_then(then)
        connection.dataReceived(OK)
        self.assertEqual(during, [1])
        self.assertEqual(len(transport.writes), 1)

    def test_sent_after_a_broken_read(self) -> None:
        """When the rest of a read is not valid HTTP, what its answers' callbacks
        gave other connections is still written."""
        other, other_transport = _open_recording()
        connection, transport = self._answered_then(
            lambda: other.send(_request(target=b"/v2/keys/c"))
        )
        following = _request(target=b"/v2/keys/next")
        connection.send(following)
        connection.dataReceived(OK + b"NOT HTTP\r\n\r\n")
        self.failureResultOf(following.d, ResponseFailed)
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(other_transport.writes), 1)
        self.assertTrue(other_transport.writes[0].startswith(b"GET /v2/keys/c "))

    def test_outside_a_read_written_at_once(self) -> None:
        """A request given outside any read is written when given."""
        connection, transport = _open_recording()
        connection.send(_request(target=b"/v2/keys/b"))
        self.assertEqual(len(transport.writes), 1)
