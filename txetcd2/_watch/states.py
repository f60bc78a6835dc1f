"""
A watcher's states, and the start/stop lifecycle shared by
:class:`~txetcd2.watch.Watcher` and :class:`~txetcd2.watch.HubWatcher`.
"""

from __future__ import annotations

import enum

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from txetcd2._transport.deadline import follow
from txetcd2._watch.listeners import Listeners


class State(enum.Enum):
    """
    What a watcher is doing.
    """

    #: not started, or stopped by :meth:`~txetcd2.watch.Watcher.stop`
    STOPPED = "stopped"
    #: waiting for a watch answer's headers
    CONNECTING = "connecting"
    #: long-polling the changes before the stream's index, the stream's events held back
    CATCHING_UP = "catching up"
    #: handing on the stream's events
    STREAMING = "streaming"
    #: streaming, and checking with a one-shot long-poll that a quiet stream misses nothing
    PROBING = "probing"
    #: backing off after an error
    WAITING = "waiting"
    #: reading the tree again (etcd lost the history needed)
    RESYNCING = "resyncing"
    #: stop() was called (or a fatal error came): aborting what is in flight
    STOPPING = "stopping"
    #: stopped by an error that retrying cannot fix (see ``failure``)
    FAILED = "failed"


#: The states of a running watcher.
RUNNING = frozenset(
    {
        State.CONNECTING,
        State.CATCHING_UP,
        State.STREAMING,
        State.PROBING,
        State.WAITING,
        State.RESYNCING,
    }
)

_AFTER_FAILURE = frozenset({State.CONNECTING, State.WAITING, State.RESYNCING, State.STOPPING})

#: The allowed transitions.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.STOPPED: frozenset({State.CONNECTING, State.STREAMING}),
    State.FAILED: frozenset({State.CONNECTING, State.STREAMING}),
    State.CONNECTING: _AFTER_FAILURE | {State.CATCHING_UP, State.STREAMING},
    State.CATCHING_UP: _AFTER_FAILURE | {State.STREAMING},
    State.STREAMING: _AFTER_FAILURE | {State.PROBING},
    State.PROBING: _AFTER_FAILURE | {State.STREAMING},
    State.WAITING: _AFTER_FAILURE,
    State.RESYNCING: _AFTER_FAILURE,
    State.STOPPING: frozenset({State.STOPPED, State.FAILED}),
}


class Halted(Exception):
    """
    Raised inside a watcher's loop when it tries to go on after a stop.
    """


class Lifecycle(Listeners, Service):
    """
    Start, stop and fail, with :class:`~twisted.application.service.IService`'s names.

    A subclass defines :meth:`_begin` (enter the first running state and
    start working), :meth:`_halt` (abort the work in flight; fire once it is
    gone) and may define :meth:`_ended` (called once stopped). It moves
    between states with :meth:`_enter` only.
    """

    _state: State = State.STOPPED
    _failure: Failure | None = None
    _stopping: Deferred[None] | None = None
    _restart = False

    # -- what a subclass provides ---------------------------------------------

    def _begin(self) -> None:
        raise NotImplementedError  # pragma: no cover - the watcher classes define it

    def _halt(self) -> Deferred[object]:
        raise NotImplementedError  # pragma: no cover - the watcher classes define it

    def _ended(self, failure: Failure | None) -> None:
        """
        Called once stopped, before the ``"stop"`` callbacks.
        """

    # -- state ------------------------------------------------------------------

    @property
    def state(self) -> State:
        """
        What the watcher is doing now (a :class:`State`).
        """
        return self._state

    @property
    def failure(self) -> Failure | None:
        """
        Why the watcher stopped by itself (state ``FAILED``), else ``None``.
        """
        return self._failure

    def _live(self) -> bool:
        return self._state in RUNNING

    def _enter(self, state: State) -> None:
        """
        Move to ``state``.

        :raises Halted: when stopping (a stop came while the loop ran).
        :raises RuntimeError: for a transition the machine does not have.
        """
        if self._state is State.STOPPING and state in RUNNING:
            raise Halted()
        if state not in TRANSITIONS[self._state]:
            raise RuntimeError(f"{self!r} cannot go from {self._state.name} to {state.name}")
        self._state = state

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """
        Start watching (does nothing if already started; started during a
        stop, it starts again once the stop completed).
        """
        self.startService()

    def stop(self) -> Deferred[None]:
        """
        Stop watching.

        :returns: a Deferred firing once nothing is in flight, no timer is
            pending and no callback will run again (except the ``"stop"``
            callbacks, called just before it fires).
        """
        return self.stopService()

    def startService(self) -> None:
        """
        :class:`~twisted.application.service.IService`'s name for :meth:`start`.
        """
        if self._state is State.STOPPING:
            self._restart = True
            return
        if self._live():
            return
        Service.startService(self)
        self._failure = None
        self._begin()

    def stopService(self) -> Deferred[None]:
        """
        :class:`~twisted.application.service.IService`'s name for :meth:`stop`.

        :returns: see :meth:`stop`.
        """
        self._restart = False
        if self._stopping is not None:
            return follow(self._stopping)
        if not self._live():
            return succeed(None)
        return self._wind_down(None)

    def _give_up(self, failure: Failure) -> None:
        """
        Stop because of an error that retrying cannot fix: report it to the
        ``"error"`` callbacks, then stop; the ``"stop"`` callbacks get it too.
        """
        self._emit("error", failure)
        if self._live():
            self._wind_down(failure)

    def _wind_down(self, failure: Failure | None) -> Deferred[None]:
        Service.stopService(self)
        self._enter(State.STOPPING)
        stopping = self._stopping = Deferred()
        self._halt().addBoth(lambda _: self._stopped(stopping, failure))
        return follow(stopping)

    def _stopped(self, stopping: Deferred[None], failure: Failure | None) -> None:
        self._stopping = None
        self._enter(State.STOPPED if failure is None else State.FAILED)
        self._failure = failure
        self._ended(failure)
        self._emit("stop", failure)
        stopping.callback(None)
        if self._restart:
            self._restart = False
            self.startService()
