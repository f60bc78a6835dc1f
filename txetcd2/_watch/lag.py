"""
Seeing a slow consumer: what ``"lagging"`` reports, and the meter of the
time a watcher's callbacks take.
"""

from __future__ import annotations

import attrs
from twisted.internet.interfaces import IReactorTime

#: Why a watcher reports ``"lagging"``.
BUSY = "busy"  # the callbacks took nearly all the reactor's time: events are piling up
DROPPED = "dropped"  # a probe found an event the stream did not deliver: etcd dropped it
HISTORY_LOST = "history lost"  # a probe found the stream more than etcd's history behind


@attrs.frozen
class Lag:
    """
    What a watcher's ``"lagging"`` callbacks get.

    :ivar reason: ``"busy"`` (the callbacks took nearly all the reactor's
        time for a while: events wait in the socket buffers, and etcd drops
        the stream once its own queue of about 100 events is full),
        ``"dropped"`` (etcd dropped the stream: the watcher catches up) or
        ``"history lost"`` (it fell more than etcd's 1000-event history
        behind: the watcher resyncs).
    :ivar behind: how many indexes the watcher was behind, at least, when known.
    """

    reason: str
    behind: int | None = None

    def __str__(self) -> str:
        behind = "" if self.behind is None else f", at least {self.behind} indexes behind"
        return f"{self.reason}{behind}"


class BusyMeter:
    """
    The share of the time spent in callbacks, over windows of ``window`` seconds.

    :param clock: the clock.
    :param window: seconds per measure.
    :param high: the share from which the consumer is saturated.
    :param low: the share under which it is no longer.
    :ivar saturated: whether the last window was (or, between ``low`` and
        ``high``, whether it still is).
    """

    __slots__ = ("_busy", "_clock", "_high", "_low", "_start", "_window", "saturated")

    def __init__(
        self, clock: IReactorTime, window: float = 1.0, high: float = 0.9, low: float = 0.5
    ) -> None:
        self._clock = clock
        self._window = window
        self._high = high
        self._low = low
        self._start = clock.seconds()
        self._busy = 0.0
        self.saturated = False

    def reset(self) -> None:
        """
        Start measuring again (the consumer caught up).
        """
        self._start = self._clock.seconds()
        self._busy = 0.0
        self.saturated = False

    def add(self, started: float) -> bool:
        """
        Count the time since ``started`` as busy.

        :param started: the clock's time when the callbacks began.
        :returns: whether the consumer just became saturated.
        """
        now = self._clock.seconds()
        self._busy += now - started
        elapsed = now - self._start
        if elapsed < self._window:
            return False
        share = self._busy / elapsed
        self._start, self._busy = now, 0.0
        if share >= self._high and not self.saturated:
            self.saturated = True
            return True
        if share < self._low:
            self.saturated = False
        return False
