"""
The body of a watch answer, split into newline-delimited JSON lines.

etcd writes one JSON document per line (``?stream=true`` keeps writing them;
a plain long-poll writes one). TCP cuts the body anywhere, so bytes are
buffered up to the delimiter before a line is handed on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

#: A line longer than this (bytes) is not an etcd event: 11 MiB is more than
#: the largest value etcd accepts, twice (value and prevNode).
MAX_LINE = 24 * 1024 * 1024


def clean_end(reason: Failure) -> bool:
    """
    Tell whether a body ended normally (the server finished it).

    :param reason: the reason given to ``connectionLost``.
    :returns: ``True`` for a complete body.
    """
    return reason.check(ResponseDone, PotentialDataLoss) is not None


class EventStream(Protocol):
    """
    Receives a response body and hands on each complete line.

    :param on_line: called with each non-empty line, without its newline.
    :param on_bytes: called whenever bytes arrive (before their lines are
        handed on), e.g. to reset an idle timer.
    :param max_line: the longest line accepted; a longer one aborts the
        connection and sets :attr:`too_long`.
    :ivar ended: fires with ``None`` once the body ended (never errbacks);
        cancelling it aborts the connection.
    :ivar reason: why the body ended (see :func:`clean_end`), once it did.
    :ivar gone: whether the connection is gone (``connectionLost`` came).
    :ivar too_long: whether the body was aborted for a line that is too long.
    """

    def __init__(
        self,
        on_line: Callable[[bytes], None],
        on_bytes: Callable[[], None] | None = None,
        max_line: int = MAX_LINE,
    ) -> None:
        self._on_line = on_line
        self._on_bytes = on_bytes
        self._max_line = max_line
        self._buffer = b""
        self._stopped = False
        self.ended: Deferred[None] = Deferred(self._cancelled)
        self.reason: Failure | None = None
        self.gone = False
        self._closed: Deferred[None] | None = None
        self.too_long = False

    def abort(self) -> None:
        """
        Stop handing on lines and drop the connection.

        The end is reported later, through :attr:`ended` and :attr:`closed`.
        """
        self._stopped = True
        transport: Any = self.transport
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        if abort is None:
            # A response body's transport is a producer proxy; stopping it
            # closes the connection.
            abort = transport.stopProducing
        abort()

    @property
    def closed(self) -> Deferred[None]:
        """
        A Deferred firing with ``None`` once the connection is gone (at once
        when it is), even if :attr:`ended` was cancelled; made when first
        asked for (thousands of idle streams never need one).
        """
        if self._closed is None:
            self._closed = Deferred()
            if self.gone:
                self._closed.callback(None)
        return self._closed

    def _cancelled(self, _: Deferred[None]) -> None:
        self.abort()

    @property
    def stopped(self) -> bool:
        """
        Whether :meth:`abort` was called.
        """
        return self._stopped

    def dataReceived(self, data: bytes) -> None:
        if self._stopped:
            return
        if self._on_bytes is not None:
            self._on_bytes()
        self._buffer += data
        if b"\n" not in data:
            if len(self._buffer) > self._max_line:
                self.too_long = True
                self.abort()
            return
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if self._stopped:
                return
            line = line.strip()
            if line:
                self._on_line(line)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        rest, self._buffer = self._buffer.strip(), b""
        if rest and not self._stopped and clean_end(reason):
            # A complete body whose last line has no newline.
            self._on_line(rest)
        self.reason = reason
        self.gone = True
        if not self.ended.called:
            self.ended.callback(None)
        if self._closed is not None:
            self._closed.callback(None)
