"""
Unit tests for request timeouts that share delayed calls.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txetcd2._transport.timeouts import _SLACK, LANES, Timeout, Timeouts


class Target:
    """Something a timeout cancels, recording when."""

    def __init__(self, clock: Clock, then: object = None) -> None:
        self.clock = clock
        self.cancelled_at: float | None = None
        self.then = then

    def cancel(self) -> None:
        self.cancelled_at = self.clock.seconds()
        if callable(self.then):
            self.then()


class TimeoutsTests(SynchronousTestCase):
    """
    Each timeout runs out at its own time; in-order ones share a delayed call.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.timeouts = Timeouts(self.clock)

    def assertNothingLeft(self) -> None:
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.timeouts.pending, 0)

    def test_runs_out_at_its_time(self) -> None:
        """A timeout cancels its Deferred at its time, not before."""
        d: Deferred[None] = Deferred()
        timer = self.timeouts.start(2.0, d)
        self.assertEqual(timer.when, 2.0)
        self.clock.advance(1.999)
        self.assertNoResult(d)
        self.assertTrue(timer.pending)
        self.clock.advance(0.001)
        self.failureResultOf(d, CancelledError)
        self.assertTrue(timer.fired)
        self.assertFalse(timer.pending)
        self.assertNothingLeft()

    def test_stopped(self) -> None:
        """A stopped timeout never runs out, and leaves no delayed call."""
        d: Deferred[None] = Deferred()
        timer = self.timeouts.start(2.0, d)
        timer.stop()
        timer.stop()
        self.assertNothingLeft()
        self.clock.advance(5)
        self.assertNoResult(d)
        self.assertFalse(timer.fired)

    def test_stop_after_running_out(self) -> None:
        """Stopping a timeout that ran out does nothing."""
        target = Target(self.clock)
        timer = self.timeouts.start(1.0, target)
        self.clock.advance(1.0)
        timer.stop()
        self.assertTrue(timer.fired)
        self.assertEqual(target.cancelled_at, 1.0)
        self.assertNothingLeft()

    def test_in_order_share_one_call(self) -> None:
        """Timeouts set one after another with the same limit share one
        delayed call, and each runs out at its own time."""
        step = 1 / 64  # exact in binary: the sums below are too
        targets = []
        for _ in range(100):
            target = Target(self.clock)
            self.timeouts.start(4.0, target)
            targets.append(target)
            self.clock.advance(step)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.pump([step] * 400)
        self.assertEqual([t.cancelled_at for t in targets], [4.0 + step * i for i in range(100)])
        self.assertNothingLeft()

    def test_stopped_ones_skipped(self) -> None:
        """When the oldest timeouts were stopped, the shared call comes at
        their time, runs out nothing, and waits for the next pending one."""
        first = self.timeouts.start(1.0, Target(self.clock))
        self.clock.advance(0.5)
        second_target = Target(self.clock)
        second = self.timeouts.start(1.0, second_target)
        first.stop()
        self.clock.advance(0.5)
        self.assertIsNone(second_target.cancelled_at)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 1.5)
        self.clock.advance(0.5)
        self.assertEqual(second_target.cancelled_at, 1.5)
        self.assertTrue(second.fired)
        self.assertNothingLeft()

    def test_last_stopped_drops_the_call(self) -> None:
        """Once every queued timeout stopped, no delayed call is left."""
        timers = [self.timeouts.start(3.0, Target(self.clock)) for _ in range(10)]
        for timer in timers:
            timer.stop()
        self.assertNothingLeft()

    def test_shorter_limit_another_lane(self) -> None:
        """A timeout that runs out before the last one queued goes in another
        queue, with its own delayed call, and runs out on time."""
        long = Target(self.clock)
        short = Target(self.clock)
        self.timeouts.start(10.0, long)
        self.timeouts.start(1.0, short)
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.clock.advance(1.0)
        self.assertEqual(short.cancelled_at, 1.0)
        self.assertIsNone(long.cancelled_at)
        self.clock.advance(9.0)
        self.assertEqual(long.cancelled_at, 10.0)
        self.assertNothingLeft()

    def test_mixed_limits_stay_in_lanes(self) -> None:
        """Reads and writes with two limits, interleaved, use two queues:
        two delayed calls, however many requests."""
        for _ in range(50):
            self.timeouts.start(1.0, Target(self.clock))
            self.timeouts.start(3.0, Target(self.clock))
            self.clock.advance(0.001)
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.clock.advance(10)
        self.assertNothingLeft()

    def test_beyond_the_lanes(self) -> None:
        """Past the queues kept, a timeout gets a delayed call of its own,
        which stopping it cancels."""
        targets = [Target(self.clock) for _ in range(LANES + 2)]
        timers = [self.timeouts.start(float(10 - i), target) for i, target in enumerate(targets)]
        self.assertEqual(len(self.clock.getDelayedCalls()), LANES + 2)
        timers[-1].stop()
        self.assertEqual(len(self.clock.getDelayedCalls()), LANES + 1)
        self.clock.pump([1.0] * 10)
        self.assertEqual(
            [t.cancelled_at for t in targets], [float(10 - i) for i in range(LANES + 1)] + [None]
        )
        self.assertNothingLeft()

    def test_running_out_starts_and_stops_others(self) -> None:
        """A cancellation that starts a timeout and stops another (a retry)
        keeps one delayed call per queue, and the new timeout runs out on
        time."""
        later = self.timeouts.start(2.0, Target(self.clock))
        started: list[Timeout] = []
        retry = Target(self.clock)

        def then() -> None:
            later.stop()
            started.append(self.timeouts.start(1.0, retry))

        self.timeouts.start(1.0, Target(self.clock, then))
        self.clock.advance(1.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.5)
        self.assertIsNone(retry.cancelled_at)
        self.clock.advance(0.5)
        self.assertEqual(retry.cancelled_at, 2.0)
        self.assertTrue(started[0].fired)
        self.assertFalse(later.fired)
        self.assertNothingLeft()

    def test_stopped_ones_are_dropped(self) -> None:
        """Timeouts stopped behind a pending one do not pile up."""
        self.timeouts.start(60.0, Target(self.clock))
        lane = self.timeouts._lanes[0]
        for _ in range(1000):
            self.clock.advance(0.001)
            self.timeouts.start(60.0, Target(self.clock)).stop()
        self.assertLessEqual(len(lane.queue), 2 + _SLACK + 1)
        self.assertEqual(self.timeouts.pending, 1)
        self.clock.advance(60)
        self.assertNothingLeft()
