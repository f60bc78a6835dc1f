"""
The watchers' one seam to the wire: :class:`WatchSource`.

A :class:`~txetcd2.watch.Watcher` (and a :class:`~txetcd2.watch.WatchHub`)
never touches the agent, the exchange or the member list itself: it asks a
:class:`WatchSource` for the current members, to open one watch request, to
read the tree for a resync, and to be stopped when the client closes.
:class:`ClientWatchSource` implements it over an
:class:`~txetcd2.EtcdClient`.

Which errors end a watcher (:func:`is_fatal`) is decided here too: the ones
that retrying cannot fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from weakref import WeakKeyDictionary

from twisted.application.service import IService
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IResponse

from txetcd2._session.disabled import confirm_disabled, looks_disabled
from txetcd2._transport.deadline import within
from txetcd2._transport.exchange import read_body
from txetcd2._wire.answers import RawResponse, error_for, etcd_headers
from txetcd2._wire.auth_models import InsufficientCredentials
from txetcd2._wire.errors import (
    ClientClosed,
    EtcdClusterMismatch,
    EtcdError,
    EtcdProtocolError,
    EtcdTimeout,
    EtcdTLSError,
    EtcdV2Disabled,
    KeyNotFound,
    Unauthorized,
)
from txetcd2._wire.models import EtcdNode, EtcdResponse

#: Errors retrying cannot fix: a watcher that meets one stops.
FATAL_ERRORS: tuple[type[EtcdError], ...] = (
    EtcdV2Disabled,
    EtcdTLSError,
    Unauthorized,
    InsufficientCredentials,
    EtcdClusterMismatch,
    ClientClosed,
)


def is_fatal(error: BaseException) -> bool:
    """
    Tell whether a watcher must give up on an error.

    :param error: what a watch request (or a resync) raised.
    :returns: ``True`` for a configuration error (v2 disabled, a TLS
        verification failure, rejected credentials, a member of another
        cluster) or a closed client; ``False`` for trouble that passes
        (a member down, a timeout, an election, an odd answer).
    """
    return isinstance(error, FATAL_ERRORS)


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


def abort_answer(response: IResponse) -> None:
    """
    Drop an answer whose body will not be read: its connection is closed
    (or, when the body is complete already, given back to the pool).

    :param response: the answer.
    """
    reading = read_body(response)
    reading.addErrback(lambda _: None)
    reading.cancel()


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


class ClientWatchSource:
    """
    A :class:`WatchSource` over an :class:`~txetcd2.EtcdClient`'s members,
    exchange and reads.

    Provisional: the session layer provides the same methods through its
    single request path.

    :param client: the client.
    """

    __slots__ = ("_client", "clock", "timeout")

    def __init__(self, client: Any) -> None:
        self._client = client
        self.clock: IReactorTime = client._reactor
        self.timeout: float = client._timeout

    def __repr__(self) -> str:
        return f"<ClientWatchSource {self._client!r}>"

    def endpoints(self) -> Sequence[str]:
        cluster = self._client._cluster
        order: list[str] = cluster._order()
        return order or list(cluster.endpoints)

    def check_open(self) -> None:
        if self._client._closed:
            raise ClientClosed()

    def track(self, service: IService) -> None:
        self._client._watching.add(service)

    def untrack(self, service: IService) -> None:
        self._client._watching.discard(service)

    def snapshot(self, key: str, recursive: bool) -> Deferred[EtcdResponse]:
        return Deferred.fromCoroutine(self._snapshot(key, recursive))

    async def _snapshot(self, key: str, recursive: bool) -> EtcdResponse:
        try:
            found: EtcdResponse = await self._client.get(
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
        exchange = self._client._exchange
        opened = within(exchange.open(endpoint, "GET", target, None), timeout, self.clock)
        try:
            response = await opened
        except TimeoutError:
            raise EtcdTimeout(endpoint, f"watch {target.split('?')[0]}", timeout) from None
        except CancelledError:
            raise
        except Exception as e:
            raise await exchange._connection_error(endpoint, e) from e
        headers = etcd_headers(response.headers)
        if response.code != 200:
            raise await self._refused(endpoint, target, response, headers, timeout)
        mismatch = self._client._cluster.freshness.foreign(
            RawResponse(endpoint, 200, headers, b"")
        )
        if mismatch is not None:
            abort_answer(response)
            self._client._cluster.foreign[endpoint] = mismatch
            raise mismatch
        watch_index(endpoint, response, headers)
        # A stream can stay open for hours, and thousands of watchers may be open: keep
        # etcd's few headers, not the whole parsed set (over 1 KiB each).
        for name, _ in list(response.headers.getAllRawHeaders()):
            response.headers.removeHeader(name)
        return response, headers

    async def _refused(
        self,
        endpoint: str,
        target: str,
        response: IResponse,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Exception:
        reading = read_body(response).addTimeout(timeout, self.clock)
        try:
            body = await reading
        except CancelledError:
            raise
        except TimeoutError:
            return EtcdTimeout(endpoint, f"watch {target.split('?')[0]} (error body)", timeout)
        except Exception as e:
            found: Exception = await self._client._exchange._connection_error(endpoint, e)
            return found
        raw = RawResponse(endpoint, response.code, headers, body)
        if looks_disabled(raw, target):
            return await confirm_disabled(self._client._exchange, raw, timeout)
        return error_for(raw)


_SOURCES: WeakKeyDictionary[Any, ClientWatchSource] = WeakKeyDictionary()


def as_source(client_or_source: Any) -> WatchSource:
    """
    The watch source to use: the argument itself when it is one, else a
    :class:`ClientWatchSource` over it (an :class:`~txetcd2.EtcdClient`).

    :param client_or_source: a :class:`WatchSource` or an ``EtcdClient``.
    :returns: the source.
    :raises TypeError: for anything else.
    """
    if isinstance(client_or_source, WatchSource):
        return client_or_source
    if hasattr(client_or_source, "_exchange") and hasattr(client_or_source, "_cluster"):
        # One per client, shared by its watchers (thousands of idle watchers are common).
        found = _SOURCES.get(client_or_source)
        if found is None:
            found = _SOURCES[client_or_source] = ClientWatchSource(client_or_source)
        return found
    raise TypeError(
        f"a watcher needs an EtcdClient (or a WatchSource), not {type(client_or_source).__name__}"
    )
