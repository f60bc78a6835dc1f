"""
Request timeouts that share delayed calls.

A client sends thousands of requests a second, each with a timeout, and
nearly every request ends well before it. A
:class:`~twisted.internet.interfaces.IDelayedCall` per request (made, pushed
on the reactor's heap, cancelled, swept from it) costs more than the rest of
the request's bookkeeping. Timeouts that run out in the order they were set
(requests with the same time limit, sent one after another) share one
delayed call instead: they wait in a queue, oldest first, and the queue's
delayed call is set for its oldest timeout (a timeout stopped early stays
queued, marked, until the call comes or the queue empties). A timeout that
would run out before the last one queued goes in another queue (one per
time limit in use, up to :data:`LANES`) or, past those, gets a delayed call
of its own. Each timeout runs out at its own time, as with its own delayed
call; no delayed call is left once no timeout is pending.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: How many queues of timeouts a :class:`Timeouts` keeps at most.
LANES = 4

#: Stopped timeouts a queue keeps, beyond twice its pending ones, before it
#: drops them (they are dropped as they reach its head otherwise).
_SLACK = 64


class Timeout:
    """
    One request's timeout: when it runs out, the request is cancelled.

    :ivar when: the clock's time it runs out at.
    :ivar fired: whether it ran out (and cancelled the request).
    """

    __slots__ = ("_call", "_lane", "_target", "fired", "when")

    def __init__(self, when: float, target: Any, lane: _Lane | None) -> None:
        self.when = when
        self.fired = False
        self._target = target
        self._lane = lane
        self._call: IDelayedCall | None = None

    @property
    def pending(self) -> bool:
        """Whether it may still run out (neither stopped nor run out)."""
        return self._target is not None

    def stop(self) -> None:
        """
        Stop it: the request ended first. (Stopping it again, or after it
        ran out, does nothing.)
        """
        if self._target is None:
            return
        self._target = None
        if self._lane is not None:
            self._lane.stopped()
        elif self._call is not None:
            self._call.cancel()
            self._call = None

    def run_out(self) -> None:
        """Cancel the request (the queue or the delayed call calls this)."""
        target, self._target = self._target, None
        self._call = None
        if target is not None:
            self.fired = True
            target.cancel()


class _Lane:
    """
    Timeouts that run out in the order they were set, and their one delayed call.

    :param clock: the clock.
    """

    __slots__ = ("_call", "_clock", "_firing", "pending", "queue")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self.queue: deque[Timeout] = deque()
        self.pending = 0
        self._call: IDelayedCall | None = None
        self._firing = False

    def add(self, timeout: Timeout) -> None:
        queue = self.queue
        while queue and queue[0]._target is None:
            queue.popleft()
        queue.append(timeout)
        self.pending += 1
        if self._call is None and not self._firing:
            self._arm()

    def stopped(self) -> None:
        # One of its timeouts stopped early.
        self.pending -= 1
        queue = self.queue
        if self.pending == 0:
            queue.clear()
            if self._call is not None:
                self._call.cancel()
                self._call = None
        elif len(queue) > 2 * self.pending + _SLACK:
            kept = [timeout for timeout in queue if timeout._target is not None]
            queue.clear()
            queue.extend(kept)

    def _arm(self) -> None:
        delay = self.queue[0].when - self._clock.seconds()
        self._call = self._clock.callLater(delay if delay > 0.0 else 0.0, self._fire)

    def _fire(self) -> None:
        # Run out every timeout due (cancelling a request may add or stop
        # others), then wait for the oldest one left.
        self._call = None
        self._firing = True
        queue = self.queue
        try:
            now = self._clock.seconds()
            while queue:
                timeout = queue[0]
                if timeout._target is not None:
                    if timeout.when > now:
                        break
                    self.pending -= 1
                    queue.popleft()
                    timeout.run_out()
                else:
                    queue.popleft()
        finally:
            self._firing = False
            if queue and self._call is None:
                self._arm()


class Timeouts:
    """
    The timeouts of one client's requests, sharing delayed calls.

    :param clock: the clock they run on.
    """

    __slots__ = ("_lanes", "clock")

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._lanes: list[_Lane] = []

    def start(self, seconds: float, target: Any) -> Timeout:
        """
        Cancel ``target`` in ``seconds`` unless the timeout is stopped first.

        :param seconds: the time limit.
        :param target: what to cancel: anything with ``cancel()`` (a Deferred).
        :returns: the timeout.
        """
        when = self.clock.seconds() + seconds
        # The queue whose last timeout runs out latest, but not after this
        # one; else an empty queue; else a new one.
        best = empty = None
        best_last = 0.0
        for lane in self._lanes:
            queue = lane.queue
            if not queue:
                empty = empty or lane
                continue
            last = queue[-1].when
            if last <= when and (best is None or last > best_last):
                best, best_last = lane, last
        if best is None:
            best = empty
        if best is None and len(self._lanes) < LANES:
            best = _Lane(self.clock)
            self._lanes.append(best)
        timeout = Timeout(when, target, best)
        if best is None:
            timeout._call = self.clock.callLater(seconds, timeout.run_out)
        else:
            best.add(timeout)
        return timeout

    @property
    def pending(self) -> int:
        """How many queued timeouts may still run out (own delayed calls aside)."""
        return sum(lane.pending for lane in self._lanes)
