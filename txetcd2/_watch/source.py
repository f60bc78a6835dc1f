"""
The watchers' one seam to the wire: :class:`WatchSource`.

A :class:`~txetcd2.watch.Watcher` (and a :class:`~txetcd2.watch.WatchHub`)
never touches the agent, the exchange or the member list itself: it asks a
:class:`WatchSource` for the current members, to open one watch request, to
read the tree for a resync, and to be stopped when the client closes.
:class:`SessionWatchSource` implements it over the client's session, the one
request path every call takes.

Which errors end a watcher are those retrying cannot fix
(:func:`txetcd2._wire.fatal.is_fatal`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from txetcd2._api.keys import KeyCalls
from txetcd2._session.session import Session
from txetcd2._transport.exchange import abort_answer
from txetcd2._wire.errors import (
    EtcdProtocolError,
    KeyNotFound,
)
from txetcd2._wire.models import EtcdNode, EtcdResponse

#: etcd's headers whose values are the same for every answer of a cluster
#: (a new term aside).
_SHARED_VALUES = ("x-etcd-cluster-id", "x-raft-term")


@runtime_checkable
class WatchSource(Protocol):
    """
    Everything a watcher needs from the client: its only way to the wire.

    :ivar clock: the clock for the watcher's timers.
    :ivar timeout: seconds a member may take to answer a request (the
        headers of a watch; the whole answer of a read).
    """

    clock: IReactorTime
    timeout: float

    def endpoints(self) -> Sequence[str]:
        """
        The members to use now, the preferred one first.

        Called at every (re)connect, so a member-list sync reaches running
        watchers; never empty.
        """

    def open(
        self, endpoint: str, target: str, timeout: float
    ) -> Deferred[tuple[IResponse, Mapping[str, str]]]:
        """
        Send one watch ``GET`` to one member and wait for its headers.

        :param endpoint: one of :meth:`endpoints`.
        :param target: the encoded path and query.
        :param timeout: seconds to wait for the headers.
        :returns: a Deferred firing with the ``200`` answer, its body unread,
            and etcd's headers by lower-case name (``x-etcd-index`` always
            there and an integer). Cancelling it aborts the request.
        :raises EtcdError: (in the Deferred) for any other answer (its body
            read, then the typed error), a timeout (:class:`EtcdTimeout`), a
            failed connection (:class:`EtcdConnectionError`, or
            :class:`EtcdTLSError`), a member of another cluster, a ``200``
            without ``X-Etcd-Index`` (:class:`EtcdProtocolError`); every such
            answer is aborted or consumed, never left open.
        """

    def snapshot(self, key: str, recursive: bool) -> Deferred[EtcdResponse]:
        """
        Read the tree for a resync: a sorted ``quorum=true`` read.

        :param key: the watched key (canonical).
        :param recursive: whether the whole subtree is wanted.
        :returns: a Deferred firing with the response; a missing key gives
            an empty node carrying the store index.
        """

    def track(self, service: IService) -> None:
        """
        Remember a running watcher, so that closing the client stops it.
        """

    def untrack(self, service: IService) -> None:
        """
        Forget a watcher that stopped.
        """

    def check_open(self) -> None:
        """
        :raises ClientClosed: when the client was closed.
        """


def watch_index(endpoint: str, response: IResponse, headers: Mapping[str, str]) -> int:
    """
    The ``X-Etcd-Index`` of a ``200`` watch answer.

    :param endpoint: the member's URL (for the error).
    :param response: the answer (aborted when the header is missing or bad).
    :param headers: etcd's headers of that answer.
    :returns: the index.
    :raises EtcdProtocolError: when it is missing or not a number; etcd always sends it.
    """
    text = headers.get("x-etcd-index", "")
    try:
        index = int(text)
    except ValueError:
        index = -1
    if index < 0:
        abort_answer(response)
        detail = (
            f"a watch answer with a bad X-Etcd-Index ({text!r})"
            if text
            else "a watch answer without X-Etcd-Index"
        )
        raise EtcdProtocolError(endpoint, response.code, detail)
    return index


class SessionWatchSource:
    """
    A :class:`WatchSource` over a session (members, the checks of every
    answer, the life cycle) and a key space (the resync read).

    :param session: the client's session.
    :param keys: the client's key calls.
    """

    __slots__ = ("_keys", "_session", "clock", "timeout")

    def __init__(self, session: Session, keys: KeyCalls) -> None:
        self._session = session
        self._keys = keys
        self.clock: IReactorTime = session.clock
        self.timeout: float = session.timeout

    def __repr__(self) -> str:
        return f"<SessionWatchSource {','.join(self._session.members.endpoints)}>"

    def endpoints(self) -> Sequence[str]:
        members = self._session.members
        return members.order() or list(members.endpoints)

    def check_open(self) -> None:
        self._session.check_open()

    def track(self, service: IService) -> None:
        self._session.track(service)

    def untrack(self, service: IService) -> None:
        self._session.untrack(service)

    def snapshot(self, key: str, recursive: bool) -> Deferred[EtcdResponse]:
        return Deferred.fromCoroutine(self._snapshot(key, recursive))

    async def _snapshot(self, key: str, recursive: bool) -> EtcdResponse:
        try:
            found: EtcdResponse = await self._keys.get(
                key, recursive=recursive, sorted=True, quorum=True
            )
        except KeyNotFound as e:
            return EtcdResponse(action="get", node=EtcdNode(key=key), etcd_index=e.index)
        return found

    def open(
        self, endpoint: str, target: str, timeout: float
    ) -> Deferred[tuple[IResponse, Mapping[str, str]]]:
        return Deferred.fromCoroutine(self._open(endpoint, target, timeout))

    async def _open(
        self, endpoint: str, target: str, timeout: float
    ) -> tuple[IResponse, Mapping[str, str]]:
        response, headers = await self._session.open(endpoint, target, timeout)
        watch_index(endpoint, response, headers)
        # The stream keeps these for its events: one copy of the values every
        # watcher of a cluster shares, not one each.
        for name in _SHARED_VALUES:
            value = headers.get(name)
            if value is not None:
                headers[name] = sys.intern(value)
        # A stream can stay open for hours, and thousands of watchers may be open: keep
        # etcd's few headers, not the whole parsed set (over 1 KiB each). A fresh empty
        # table, because a dict emptied by deletions keeps its size.
        try:
            response.headers = Headers()
        except AttributeError:  # pragma: no cover - an answer with read-only headers
            for name, _ in list(response.headers.getAllRawHeaders()):
                response.headers.removeHeader(name)
        return response, headers


def as_source(client_or_source: Any) -> WatchSource:
    """
    The watch source to use: the argument itself when it is one, else the
    source of an :class:`~txetcd2.EtcdClient` (one per client, shared by its
    watchers: thousands of idle watchers are common).

    :param client_or_source: a :class:`WatchSource` or an ``EtcdClient``.
    :returns: the source.
    :raises TypeError: for anything else.
    """
    if isinstance(client_or_source, WatchSource):
        return client_or_source
    found = getattr(client_or_source, "_watch_source", None)
    if isinstance(found, WatchSource):
        return found
    raise TypeError(
        f"a watcher needs an EtcdClient (or a WatchSource), not {type(client_or_source).__name__}"
    )
