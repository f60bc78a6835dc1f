"""
Callbacks by event name, and ``async for``, shared by
:class:`~txetcd2.watch.Watcher` and :class:`~txetcd2.watch.HubWatcher`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, overload

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txetcd2._watch.lag import Lag
from txetcd2._wire.models import EtcdResponse

#: etcd's actions; each is also an event name of :meth:`~txetcd2.watch.Watcher.on`.
ACTIONS = (
    "set",
    "delete",
    "expire",
    "create",
    "update",
    "compareAndSwap",
    "compareAndDelete",
)

#: Every name :meth:`~txetcd2.watch.Watcher.on` accepts.
EVENT_NAMES = ("change", *ACTIONS, "resync", "reconnect", "lagging", "error", "stop")


class Events:
    """
    The asynchronous iterator behind ``async for event in watcher``.
    """

    def __init__(self) -> None:
        self._queue: deque[EtcdResponse] = deque()
        self._waiting: Deferred[EtcdResponse | None] | None = None
        self._done = False
        self._failure: Failure | None = None

    def push(self, event: EtcdResponse) -> None:
        if self._done:
            return
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.callback(event)
        else:
            self._queue.append(event)

    def close(self, failure: object = None) -> None:
        self._done = True
        if isinstance(failure, Failure):
            self._failure = failure
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.callback(None)

    def __aiter__(self) -> Events:
        return self

    async def __anext__(self) -> EtcdResponse:
        if self._queue:
            return self._queue.popleft()
        if not self._done:
            self._waiting = Deferred()
            event = await self._waiting
            if event is not None:
                return event
        if self._failure is not None:
            failure, self._failure = self._failure, None
            failure.raiseException()
        raise StopAsyncIteration


class Listeners:
    """
    The ``on``/``off`` registry of a watcher, and the calling of its callbacks.

    The class using it sets ``_listeners`` to ``None`` (the dict is made at
    the first :meth:`on`: idle watchers are many, most with few callbacks), and keeps
    ``_key`` (for the log) and ``_live()`` (no callback runs once stopped,
    but those of ``"stop"``).
    """

    log: Logger
    _key: str
    _listeners: dict[str, list[Callable[[Any], object]]] | None

    def _live(self) -> bool:
        raise NotImplementedError  # pragma: no cover - the watcher classes define it

    def start(self) -> None:
        raise NotImplementedError  # pragma: no cover - the watcher classes define it

    def __aiter__(self) -> AsyncIterator[EtcdResponse]:
        """
        Iterate over the changes (and resync snapshots, ``action == "get"``)
        with ``async for``; starts the watcher if needed. The iteration ends
        when the watcher stops; when it stopped on an error that retrying
        cannot fix, the iteration raises that error.

        :returns: an asynchronous iterator.
        """
        events = Events()
        self.on("change", events.push)
        self.on("resync", events.push)
        self.on("stop", events.close)
        self.start()
        return events

    @overload
    def on(self, name: Literal["error"], callback: Callable[[Failure], object]) -> None: ...

    @overload
    def on(self, name: Literal["reconnect"], callback: Callable[[float], object]) -> None: ...

    @overload
    def on(self, name: Literal["lagging"], callback: Callable[[Lag], object]) -> None: ...

    @overload
    def on(self, name: Literal["stop"], callback: Callable[[Failure | None], object]) -> None: ...

    @overload
    def on(self, name: str, callback: Callable[[EtcdResponse], object]) -> None: ...

    def on(self, name: str, callback: Callable[[Any], object]) -> None:
        """
        Call ``callback`` on an event.

        Names and what the callback gets:

        - ``"change"``: every change, an :class:`EtcdResponse`;
        - an action (``"set"``, ``"delete"``, ``"expire"``, ``"create"``,
          ``"update"``, ``"compareAndSwap"``, ``"compareAndDelete"``): the
          changes with that action (after the ``"change"`` callbacks);
        - ``"resync"``: etcd no longer had the history needed, so the tree was
          read again (quorum read): an :class:`EtcdResponse` with
          ``action == "get"``, whose ``etcd_index`` is the index of that view;
          changes after it follow. When the key does not exist, its ``node``
          has no value, no children and ``modified_index == 0``;
        - ``"reconnect"``: a new request is about to be sent, after the given
          delay in seconds (``0.0``: at once);
        - ``"lagging"``: the callbacks are slower than the writes (see
          :class:`~txetcd2.watch.Watcher`): a :class:`~txetcd2.watch.Lag`
          saying why (``"busy"``, ``"dropped"``, ``"history lost"``) and, when
          known, how many indexes the watcher was behind;
        - ``"error"``: a :class:`~twisted.python.failure.Failure` for a
          problem: one the watcher recovers from (a failed request, a
          malformed answer, a callback that raised: it retries or goes on),
          or one that retrying cannot fix (the v2 API disabled, a TLS
          verification failure, rejected credentials, a member of another
          cluster, a closed client): the watcher then stops;
        - ``"stop"``: once the watcher stopped: ``None`` after :meth:`stop`
          (or the client's ``close()``), the
          :class:`~twisted.python.failure.Failure` when it stopped on an
          error (also in its ``failure`` attribute).

        A callback that raises is logged and reported to the ``"error"``
        callbacks; the other callbacks and the watcher go on.

        :param name: the event name.
        :param callback: the callable.
        :raises ValueError: for an unknown name.
        :raises TypeError: if ``callback`` is not callable.
        """
        if name not in EVENT_NAMES:
            names = ", ".join(EVENT_NAMES)
            raise ValueError(f"unknown watcher event {name!r}; use one of {names}")
        if not callable(callback):
            raise TypeError(f"the {name!r} callback must be callable")
        if self._listeners is None:
            self._listeners = {}
        self._listeners.setdefault(name, []).append(callback)

    def off(self, name: str, callback: Callable[[Any], object]) -> None:
        """
        Stop calling a callback registered with :meth:`on`.

        :param name: the event name.
        :param callback: the callable.
        :raises ValueError: if it was not registered for that name.
        """
        try:
            (self._listeners or {}).get(name, []).remove(callback)
        except ValueError:
            raise ValueError(f"{callback!r} is not registered for {name!r}") from None

    def _emit(self, name: str, payload: object) -> None:
        if not self._listeners:
            return
        for callback in list(self._listeners.get(name, ())):
            if name != "stop" and not self._live():
                return
            try:
                callback(payload)
            except Exception:
                failure = Failure()
                self.log.failure(
                    "watch {key}: a {name!r} callback raised", failure, key=self._key, name=name
                )
                if name != "error":
                    self._emit("error", failure)
