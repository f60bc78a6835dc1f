"""
The liveness probe of a quiet stream: one one-shot long-poll.

etcd drops a stream reader that fell more than ~100 events behind without
closing the stream, and a member that lost quorum accepts streams and stays
silent: a quiet stream proves nothing. A one-shot ``?wait=true&waitIndex=N``
for the next wanted index ``N`` does: etcd answers it at once with an event
its history holds (the stream missed it), and otherwise flushes its headers
and blocks; the headers' ``X-Etcd-Index`` (the store index when the poll
started) then proves that no change of the key lies between ``N`` and that
index, so the watch may resume after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import attrs
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from txetcd2._transport.exchange import abort_answer
from txetcd2._transport.lines import EventStream, clean_end
from txetcd2._watch.source import WatchSource
from txetcd2._wire.errors import EtcdConnectionError, EtcdProtocolError
from txetcd2._wire.models import DecodeError, EtcdResponse, decode_event


@attrs.frozen
class Blocked:
    """
    The probe was accepted and stayed pending: nothing up to ``store`` was missed.
    """

    store: int


@attrs.frozen
class Found:
    """
    The probe got an event: from history (``event.index <= store``: the stream
    is behind) or a new one.
    """

    event: EtcdResponse
    store: int

    @property
    def behind(self) -> bool:
        """
        Whether etcd's history held the event when the probe started, so the
        stream should have delivered it already.
        """
        return self.event.index <= self.store


@attrs.frozen
class Failed:
    """
    The probe failed (the member is down, paused, or answered with an error).
    """

    error: Exception


@attrs.frozen
class Inconclusive:
    """
    The probe's answer ended without an event (an old server's idle close).
    """


Outcome = Blocked | Found | Failed | Inconclusive


class Probe:
    """
    One probe of one member.

    :param source: where requests go.
    :param endpoint: the member serving the stream.
    :param target: the long-poll's encoded path and query (with ``waitIndex``).
    :param grace: seconds to wait for the body after the headers before
        concluding that the poll blocks (etcd writes an event it has right
        after the headers).
    :param done: called once with the :data:`Outcome`; never after :meth:`cancel`.
    """

    def __init__(
        self,
        source: WatchSource,
        endpoint: str,
        target: str,
        grace: float,
        done: Callable[[Outcome], None],
    ) -> None:
        self._source = source
        self._endpoint = endpoint
        self._target = target
        self._grace = grace
        self._done: Callable[[Outcome], None] | None = done
        self._opening: Deferred[tuple[IResponse, Mapping[str, str]]] | None = None
        self._reader: EventStream | None = None
        self._timer: IDelayedCall | None = None
        self._store = 0
        self._headers: Mapping[str, str] = {}

    def start(self) -> None:
        """
        Send the long-poll.
        """
        opening = self._opening = self._source.open(
            self._endpoint, self._target, self._source.timeout
        )
        opening.addCallbacks(self._opened, self._failed)

    @property
    def closed(self) -> Deferred[None]:
        """
        A Deferred firing once the probe's connection is gone (at once if it has none).
        """
        if self._reader is None:
            return succeed(None)
        return self._reader.closed

    def cancel(self) -> None:
        """
        Abandon the probe: abort its request; :attr:`closed` fires once it is gone.
        """
        self._done = None
        self._end()

    def _end(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        opening, self._opening = self._opening, None
        if opening is not None:
            opening.cancel()
        if self._reader is not None:
            self._reader.abort()

    def _finish(self, outcome: Outcome) -> None:
        done, self._done = self._done, None
        self._end()
        if done is not None:
            done(outcome)

    def _opened(self, result: tuple[IResponse, Mapping[str, str]]) -> None:
        self._opening = None
        response, headers = result
        if self._done is None:
            abort_answer(response)
            return
        self._store = int(headers["x-etcd-index"])
        self._headers = headers
        reader = self._reader = EventStream(self._line)
        reader.ended.addCallback(self._body_ended)
        response.deliverBody(reader)
        if self._done is not None:
            self._timer = self._source.clock.callLater(self._grace, self._graced)

    def _failed(self, failure: Failure) -> None:
        self._opening = None
        if failure.check(CancelledError) or self._done is None:
            return
        error = failure.value
        assert isinstance(error, Exception)
        self._finish(Failed(error))

    def _line(self, line: bytes) -> None:
        try:
            event = decode_event(json.loads(line), self._headers)
        except (ValueError, DecodeError) as e:
            self._finish(
                Failed(EtcdProtocolError(self._endpoint, 200, f"a malformed watch event ({e})"))
            )
            return
        self._finish(Found(event, self._store))

    def _body_ended(self, _: object) -> None:
        reader = self._reader
        if self._done is None or reader is None:
            return
        reason = reader.reason
        if reason is not None and clean_end(reason):
            self._finish(Inconclusive())
        else:
            detail = reason.getErrorMessage() if reason is not None else "no reason"
            self._finish(
                Failed(EtcdConnectionError(self._endpoint, f"a probe was cut short ({detail})"))
            )

    def _graced(self) -> None:
        # One more turn of the reactor: bytes that arrived while it was busy
        # are read before the probe concludes that it blocks.
        self._timer = self._source.clock.callLater(0, self._settle)

    def _settle(self) -> None:
        self._timer = None
        self._finish(Blocked(self._store))
