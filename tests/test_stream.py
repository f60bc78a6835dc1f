"""
Unit tests for the newline-delimited JSON body reader.
"""

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone

from txetcd2._transport.lines import EventStream, clean_end


class FakeBodyTransport:
    """
    Records how the reader tried to drop the connection.
    """

    def __init__(self) -> None:
        self.aborted = 0

    def abortConnection(self) -> None:
        self.aborted += 1


class ProducerOnlyTransport:
    """
    Like the transport twisted.web gives a body: a producer proxy.
    """

    def __init__(self) -> None:
        self.stopped = 0

    def stopProducing(self) -> None:
        self.stopped += 1


class EventStreamTests(SynchronousTestCase):
    """
    EventStream buffers bytes and hands on whole lines.
    """

    def setUp(self) -> None:
        self.lines: list[bytes] = []
        self.touched = 0
        self.stream = EventStream(self.lines.append, self.touch, max_line=64)
        self.transport = FakeBodyTransport()
        self.stream.makeConnection(self.transport)

    def touch(self) -> None:
        self.touched += 1

    def test_every_chunking(self) -> None:
        """Whatever the chunking of a body, the same lines come out."""
        body = b'{"a": 1}\n{"b": 22}\n{"c": 333}\n'
        for first in range(len(body) + 1):
            for second in range(first, len(body) + 1):
                lines: list[bytes] = []
                stream = EventStream(lines.append)
                stream.makeConnection(FakeBodyTransport())
                for chunk in (body[:first], body[first:second], body[second:]):
                    if chunk:
                        stream.dataReceived(chunk)
                self.assertEqual(lines, [b'{"a": 1}', b'{"b": 22}', b'{"c": 333}'])

    def test_byte_by_byte(self) -> None:
        """A body delivered one byte at a time gives each line once, when complete."""
        for byte in b'{"x": 1}\n{"y"':
            self.stream.dataReceived(bytes([byte]))
        self.assertEqual(self.lines, [b'{"x": 1}'])
        self.assertEqual(self.touched, len(b'{"x": 1}\n{"y"'))

    def test_blank_lines_and_crlf(self) -> None:
        """Blank lines are skipped and a carriage return before the newline is dropped."""
        self.stream.dataReceived(b'\n\r\n{"a": 1}\r\n\n{"b": 2}\n')
        self.assertEqual(self.lines, [b'{"a": 1}', b'{"b": 2}'])

    def test_last_line_on_clean_end(self) -> None:
        """A complete body whose last line lacks a newline still hands that line on."""
        self.stream.dataReceived(b'{"a": 1}')
        self.stream.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.lines, [b'{"a": 1}'])
        self.assertIsNone(self.successResultOf(self.stream.ended))
        reason = self.stream.reason
        assert reason is not None
        self.assertTrue(clean_end(reason))
        self.assertIsNone(self.successResultOf(self.stream.closed))

    def test_partial_line_dropped_on_truncation(self) -> None:
        """A body cut short drops its incomplete last line and reports the reason."""
        self.stream.dataReceived(b'{"a": 1}\n{"b":')
        self.stream.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.lines, [b'{"a": 1}'])
        self.assertIsNone(self.successResultOf(self.stream.ended))
        reason = self.stream.reason
        assert reason is not None
        self.assertFalse(clean_end(reason))
        self.assertIsNotNone(reason.check(ConnectionLost))

    def test_abort(self) -> None:
        """Aborting drops the connection and stops handing on lines, even from the same chunk."""

        def on_line(line: bytes) -> None:
            self.lines.append(line)
            stream.abort()

        stream = EventStream(on_line)
        stream.makeConnection(self.transport)
        stream.dataReceived(b"1\n2\n3\n")
        stream.dataReceived(b"4\n")
        self.assertEqual(self.lines, [b"1"])
        self.assertEqual(self.transport.aborted, 1)
        self.assertTrue(stream.stopped)
        self.assertNoResult(stream.ended)

    def test_abort_producer_transport(self) -> None:
        """Without abortConnection, aborting stops the producer (which closes the connection)."""
        stream = EventStream(self.lines.append)
        transport = ProducerOnlyTransport()
        stream.makeConnection(transport)
        stream.abort()
        self.assertEqual(transport.stopped, 1)

    def test_cancel_ended_aborts(self) -> None:
        """Cancelling the ended Deferred aborts the connection; closed still fires on the end."""
        self.stream.ended.cancel()
        self.failureResultOf(self.stream.ended, CancelledError)
        self.assertEqual(self.transport.aborted, 1)
        self.assertNoResult(self.stream.closed)
        self.stream.connectionLost(Failure(ConnectionLost()))
        self.assertIsNone(self.successResultOf(self.stream.closed))

    def test_line_too_long(self) -> None:
        """A line longer than the limit aborts the body and is flagged, not buffered forever."""
        self.stream.dataReceived(b"x" * 65)
        self.assertTrue(self.stream.too_long)
        self.assertEqual(self.transport.aborted, 1)
        self.assertEqual(self.lines, [])


class LazyClosedTests(SynchronousTestCase):
    """
    EventStream.closed is made when first asked for.
    """

    def test_asked_after_the_end(self) -> None:
        """Asked for after the connection is gone, closed has fired already."""
        stream = EventStream(lambda line: None)
        stream.makeConnection(FakeBodyTransport())
        self.assertFalse(stream.gone)
        stream.connectionLost(Failure(ResponseDone()))
        self.assertTrue(stream.gone)
        self.assertIsNone(self.successResultOf(stream.closed))
        self.assertIsNone(self.successResultOf(stream.ended))
