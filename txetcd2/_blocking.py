"""
A blocking facade over :class:`~txetcd2.EtcdClient`, for code that does not run a reactor.

Twisted runs in a background thread managed by crochet; each call is handed to that thread and
the calling thread blocks until the Deferred fires. The async client is only ever touched from
the reactor thread, so one :class:`BlockingEtcdClient` may be shared by many threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, TimeoutError, maybeDeferred
from twisted.python import threadable
from twisted.python.failure import Failure

from txetcd2._client import EtcdClient
from txetcd2._reactor import default_reactor
from txetcd2._wire.errors import EtcdError, EtcdTimeout
from txetcd2._wire.models import EtcdResponse

_MISSING: Any = object()
_setup_lock = threading.Lock()
_Self = TypeVar("_Self", bound="BlockingEtcdClient")


class ReactorThreadError(EtcdError, RuntimeError):
    """
    A :class:`BlockingEtcdClient` was called from the reactor thread, where blocking would
    deadlock the reactor.
    """

    def __str__(self) -> str:
        return (
            "BlockingEtcdClient was called from the Twisted reactor thread, where it would "
            "block the reactor forever; in reactor code use txetcd2.EtcdClient (which returns "
            "Deferreds) instead"
        )


def _crochet() -> Any:
    """
    Import crochet and start its reactor thread (once; later calls do nothing).

    :returns: the crochet module.
    :raises ImportError: with install instructions when crochet is missing.
    """
    try:
        import crochet
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "txetcd2.blocking needs crochet; install it with `pip install txetcd2[blocking]`"
        ) from e
    with _setup_lock:
        crochet.setup()
    return crochet


def _check_thread() -> None:
    if threadable.isInIOThread():
        raise ReactorThreadError()


class BlockingEtcdClient:
    """
    The key-space methods of :class:`~txetcd2.EtcdClient` as plain blocking calls.

    The first instance starts Twisted's global reactor in a background thread (with
    ``crochet.setup()``); don't use it in a program that runs the reactor itself. Results and
    errors are those of the async client: the same :class:`~txetcd2.EtcdResponse` values and the
    same :class:`~txetcd2.EtcdError` subclasses, raised in the calling thread. Safe to use from
    several threads at once. Use it as a context manager, or call :meth:`close`.

    :param endpoints: one member's URL, a comma-separated list, or a sequence of URLs.
    :param timeout: seconds the async client waits for each answer.
    :param deadline: seconds a blocking call waits overall before it is cancelled and raises
        :class:`~txetcd2.EtcdTimeout` (default: no limit beyond the client's own timeouts).
    :param client_options: other keyword arguments of :class:`~txetcd2.EtcdClient`
        (``pool_size``, ``watch_timeout``, TLS and auth options).
    :raises ReactorThreadError: when created in the reactor thread.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] = "http://127.0.0.1:2379",
        *,
        timeout: float = 5.0,
        deadline: float | None = None,
        **client_options: Any,
    ) -> None:
        _check_thread()
        if deadline is not None and not deadline > 0:
            raise ValueError(f"deadline must be a positive number of seconds, not {deadline!r}")
        self._crochet = _crochet()
        self._deadline = deadline
        self._description = endpoints if isinstance(endpoints, str) else ",".join(endpoints)

        def build() -> EtcdClient:
            return EtcdClient(
                endpoints, reactor=default_reactor(), timeout=timeout, **client_options
            )

        self._client: EtcdClient = self._call(build, None)

    def __repr__(self) -> str:
        return f"<BlockingEtcdClient {self._description}>"

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def endpoints(self) -> list[str]:
        """
        The members' base URLs, as the client knows them.
        """
        return self._client.endpoints

    def _call(
        self,
        function: Callable[[], Any],
        deadline: float | None,
        why: str = "the blocking call ran out of time",
    ) -> Any:
        """
        Run ``function`` in the reactor thread and wait for its result.

        :param function: called in the reactor thread; may return a Deferred.
        :param deadline: seconds after which the Deferred is cancelled, or None.
        :param why: the timeout's reason.
        :returns: its result.
        :raises ReactorThreadError: when called in the reactor thread.
        :raises EtcdTimeout: when ``deadline`` ran out (the call is cancelled).
        """
        _check_thread()
        description = self._description

        def call() -> Deferred[Any]:
            d = maybeDeferred(function)
            if deadline is None:
                return d
            d.addTimeout(deadline, default_reactor())

            def timed_out(failure: Failure) -> None:
                failure.trap(TimeoutError)
                raise EtcdTimeout(description, why, deadline) from None

            return d.addErrback(timed_out)

        return self._crochet.run_in_reactor(call)().wait(None)

    def _keys(self, method: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self._client, method)
        return self._call(lambda: bound(*args, **kwargs), self._deadline)

    def get(
        self,
        key: str,
        *,
        recursive: bool = False,
        sorted: bool = False,
        quorum: bool = False,
    ) -> EtcdResponse:
        """
        Read a key, or list a directory (see :meth:`txetcd2.EtcdClient.get`).

        :param key: the key.
        :param recursive: list a directory's whole subtree.
        :param sorted: list children in key order.
        :param quorum: read through the leader (never stale).
        :returns: the response.
        :raises KeyNotFound: if the key does not exist.
        """
        response: EtcdResponse = self._keys(
            "get", key, recursive=recursive, sorted=sorted, quorum=quorum
        )
        return response

    def get_value(self, key: str, default: Any = _MISSING) -> Any:
        """
        Read a key's value (see :meth:`txetcd2.EtcdClient.get_value`).

        :param key: the key.
        :param default: returned when the key does not exist; without it a missing key raises
            :class:`~txetcd2.KeyNotFound`.
        :returns: the value.
        :raises NotFile: if the key is a directory.
        """
        if default is _MISSING:
            return self._keys("get_value", key)
        return self._keys("get_value", key, default)

    def set(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        prev_value: str | None = None,
        prev_index: int | None = None,
        prev_exist: bool | None = None,
    ) -> EtcdResponse:
        """
        Set a key's value, creating or replacing it (see :meth:`txetcd2.EtcdClient.set`).

        :param key: the key.
        :param value: the value.
        :param ttl: seconds until the key expires.
        :param prev_value: only if the current value is this.
        :param prev_index: only if the key was last modified at this index.
        :param prev_exist: only if the key exists (True) or does not (False).
        :returns: the response.
        """
        response: EtcdResponse = self._keys(
            "set",
            key,
            value,
            ttl=ttl,
            prev_value=prev_value,
            prev_index=prev_index,
            prev_exist=prev_exist,
        )
        return response

    def create(self, key: str, value: str, *, ttl: int | None = None) -> EtcdResponse:
        """
        Create a key that must not exist yet.

        :param key: the key.
        :param value: the value.
        :param ttl: seconds until the key expires.
        :returns: the response.
        :raises NodeExist: if the key exists.
        """
        response: EtcdResponse = self._keys("create", key, value, ttl=ttl)
        return response

    def update(self, key: str, value: str, *, ttl: int | None = None) -> EtcdResponse:
        """
        Change a key that must exist already (an existing TTL is removed without ``ttl``).

        :param key: the key.
        :param value: the value.
        :param ttl: seconds until the key expires.
        :returns: the response.
        :raises KeyNotFound: if the key does not exist.
        """
        response: EtcdResponse = self._keys("update", key, value, ttl=ttl)
        return response

    def refresh(self, key: str, ttl: int) -> EtcdResponse:
        """
        Reset a key's TTL without changing its value and without waking watchers.

        :param key: the key.
        :param ttl: the new TTL in seconds.
        :returns: the response.
        :raises KeyNotFound: if the key does not exist.
        """
        response: EtcdResponse = self._keys("refresh", key, ttl)
        return response

    def append(self, dir_key: str, value: str, *, ttl: int | None = None) -> EtcdResponse:
        """
        Create an in-order key in a directory.

        :param dir_key: the directory.
        :param value: the value.
        :param ttl: seconds until the key expires.
        :returns: the response; ``node.key`` is the new key.
        """
        response: EtcdResponse = self._keys("append", dir_key, value, ttl=ttl)
        return response

    def delete(
        self,
        key: str,
        *,
        recursive: bool = False,
        dir: bool = False,
        prev_value: str | None = None,
        prev_index: int | None = None,
        missing_ok: bool = False,
    ) -> EtcdResponse | None:
        """
        Delete a key or directory (see :meth:`txetcd2.EtcdClient.delete`).

        :param key: the key.
        :param recursive: delete a directory with everything below it.
        :param dir: delete an empty directory.
        :param prev_value: only if the current value is this.
        :param prev_index: only if the key was last modified at this index.
        :param missing_ok: return None instead of raising :class:`~txetcd2.KeyNotFound`.
        :returns: the response, or None.
        """
        response: EtcdResponse | None = self._keys(
            "delete",
            key,
            recursive=recursive,
            dir=dir,
            prev_value=prev_value,
            prev_index=prev_index,
            missing_ok=missing_ok,
        )
        return response

    def compare_and_swap(
        self,
        key: str,
        value: str,
        *,
        prev_value: str | None = None,
        prev_index: int | None = None,
        ttl: int | None = None,
    ) -> EtcdResponse:
        """
        Set a key only if it still has the given value and/or index.

        :param key: the key.
        :param value: the new value.
        :param prev_value: the value it must have now.
        :param prev_index: the index it must have been modified at.
        :param ttl: seconds until the key expires.
        :returns: the response.
        :raises ValueError: if neither condition is given.
        :raises TestFailed: if the condition did not hold.
        """
        response: EtcdResponse = self._keys(
            "compare_and_swap",
            key,
            value,
            prev_value=prev_value,
            prev_index=prev_index,
            ttl=ttl,
        )
        return response

    def compare_and_delete(
        self, key: str, *, prev_value: str | None = None, prev_index: int | None = None
    ) -> EtcdResponse:
        """
        Delete a key only if it still has the given value and/or index.

        :param key: the key.
        :param prev_value: the value it must have now.
        :param prev_index: the index it must have been modified at.
        :returns: the response.
        :raises ValueError: if neither condition is given.
        :raises TestFailed: if the condition did not hold.
        """
        response: EtcdResponse = self._keys(
            "compare_and_delete", key, prev_value=prev_value, prev_index=prev_index
        )
        return response

    def mkdir(self, key: str, *, ttl: int | None = None) -> EtcdResponse:
        """
        Create a directory that must not exist yet.

        :param key: the directory.
        :param ttl: seconds until it expires.
        :returns: the response.
        :raises NodeExist: if the key exists.
        """
        response: EtcdResponse = self._keys("mkdir", key, ttl=ttl)
        return response

    def rmdir(self, key: str, *, recursive: bool = False) -> EtcdResponse:
        """
        Remove a directory.

        :param key: the directory.
        :param recursive: remove everything below it too.
        :returns: the response.
        :raises DirNotEmpty: if it has children and ``recursive`` is False.
        """
        response: EtcdResponse = self._keys("rmdir", key, recursive=recursive)
        return response

    def watch(
        self,
        key: str,
        *,
        index: int | None = None,
        recursive: bool = False,
        timeout: float | None = None,
    ) -> EtcdResponse:
        """
        Block until the next change of a key (one long-poll).

        :param key: the key or directory.
        :param index: wait for the first change at or after this index.
        :param recursive: watch everything below a directory.
        :param timeout: seconds to wait for a change before raising
            :class:`~txetcd2.EtcdTimeout` (default: wait as long as it takes).
        :returns: the event.
        :raises EventIndexCleared: if ``index`` is older than etcd's event history.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        client = self._client
        response: EtcdResponse = self._call(
            lambda: client.watch(key, index=index, recursive=recursive),
            timeout,
            f"no change of {key} within the watch's timeout",
        )
        return response

    def close(self) -> None:
        """
        Cancel this client's requests in flight and close its connections.

        The reactor thread keeps running (other clients may use it); it stops when the program
        exits.
        """
        self._call(self._client.close, self._deadline or 10.0)
