"""
Timeouts and cancellation of requests, as the client means them.

Twisted's ``Agent`` reports a cancelled request not as a
:class:`~twisted.internet.defer.CancelledError` but as a
:class:`~twisted.web.client.ResponseNeverReceived` carrying one (while the
request is in flight), or as a
:class:`~twisted.internet.error.ConnectingCancelledError` (while it
connects). Taken as they come, a request cancelled by its caller (or by
``EtcdClient.close()``) would look like a connection failure and be retried
on the next member, and a request that timed out in flight would look like a
broken connection rather than a timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from txetcd2._transport.timeouts import Timeout, Timeouts

_T = TypeVar("_T")


def cancelled_request(error: BaseException) -> bool:
    """
    Tell whether an HTTP-layer failure reports a cancelled request.

    :param error: the exception from the HTTP layer.
    :returns: ``True`` for :class:`CancelledError`,
        :class:`ConnectingCancelledError`, and ``ResponseNeverReceived`` or
        ``ResponseFailed`` because of a :class:`CancelledError`.
    """
    if isinstance(error, CancelledError | ConnectingCancelledError):
        return True
    if isinstance(error, ResponseNeverReceived | ResponseFailed):
        return any(reason.check(CancelledError) is not None for reason in error.reasons)
    return False


def _cancelled(failure: Failure) -> bool:
    return failure.value is not None and cancelled_request(failure.value)


def within(
    d: Deferred[_T],
    timeout: float | None,
    clock: IReactorTime | Timeouts,
    failed: Callable[[Failure], object] | None = None,
) -> Deferred[_T]:
    """
    Give a request a deadline, and report its cancellation plainly.

    When ``timeout`` runs out, the request is cancelled and fails with
    :class:`TimeoutError`, except while it was still connecting: then the
    :class:`ConnectingCancelledError` is kept, as it proves the request was
    never sent (so it may go to another member). When the caller cancels it,
    it fails with :class:`CancelledError`, whatever the agent reported.

    :param d: the request's Deferred.
    :param timeout: seconds; ``None`` for no deadline.
    :param clock: the clock, or the client's :class:`Timeouts` (which share
        delayed calls between requests).
    :param failed: called with the failure, so reported, in the same
        callback (the request's errback); what it returns or raises is the
        result.
    :returns: ``d``.
    """
    # One callback and one timeout, rather than Deferred.addTimeout's two
    # callbacks and an errback and a delayed call: this runs for every request.
    timer: Timeout | None = None

    def settle(result: _T | Failure) -> Any:
        if timer is not None:
            timer.stop()  # (nothing once it ran out)
        if not isinstance(result, Failure):
            return result
        result = settled_failure(result, timer is not None and timer.fired, timeout)
        return result if failed is None else failed(result)

    if timeout is not None:
        timeouts = clock if isinstance(clock, Timeouts) else Timeouts(clock)
        timer = timeouts.start(timeout, d)
    settled: Deferred[_T] = d.addBoth(settle)
    return settled


def settled_failure(result: Failure, timed_out: bool, timeout: float | None) -> Failure:
    """
    How a request's failure is reported by :func:`within`.

    :param result: the failure as the HTTP layer reported it.
    :param timed_out: whether the deadline ran out (and cancelled it).
    :param timeout: the deadline's seconds, for the message.
    :returns: a :class:`TimeoutError` for a request the deadline cancelled
        (unless it was still connecting), a :class:`CancelledError` for one
        its caller cancelled, otherwise ``result``.
    """
    if timed_out:
        if result.check(ConnectingCancelledError) is None and _cancelled(result):
            return Failure(TimeoutError(f"no answer within {timeout} seconds"))
    elif result.check(CancelledError) is None and _cancelled(result):
        return Failure(CancelledError())
    return result


def follow(d: Deferred[None]) -> Deferred[None]:
    """
    A new Deferred firing (with ``None``) when ``d`` does, leaving ``d``'s
    result alone: for handing out "it has stopped" to several callers.

    :param d: the Deferred to follow.
    :returns: the new Deferred.
    """
    result: Deferred[None] = Deferred()

    def fire(outcome: object) -> object:
        result.callback(None)
        return outcome

    d.addBoth(fire)
    return result


class Deadline:
    """
    The moment a whole call must be over by: every attempt, back-off and
    follow-up request of the call takes its time from what remains.

    :param clock: the clock.
    :param seconds: the call's time limit; ``None`` for none.
    """

    __slots__ = ("_clock", "_end", "seconds")

    def __init__(self, clock: IReactorTime, seconds: float | None) -> None:
        self._clock = clock
        self.seconds = seconds
        self._end = None if seconds is None else clock.seconds() + seconds

    def remaining(self) -> float | None:
        """
        :returns: the seconds left (0 when it has passed), or ``None`` without a deadline.
        """
        if self._end is None:
            return None
        left = self._end - self._clock.seconds()
        return left if left > 0.0 else 0.0

    def allows(self, seconds: float) -> bool:
        """
        Tell whether waiting ``seconds`` still leaves time for an attempt.

        :param seconds: a wait, like a back-off.
        :returns: ``False`` when the deadline would pass during the wait.
        """
        remaining = self.remaining()
        return remaining is None or seconds < remaining
