"""
What the recipes share: argument checks, the clock, named callbacks and the
"delete my key if it is still mine" step.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from txetcd2._logs import PublicLogger
from txetcd2._wire.fatal import is_fatal
from txetcd2.errors import (
    EtcdConnectionError,
    EtcdError,
    EtcdOutcomeUnknown,
    EtcdRaftError,
    EtcdStaleAnswer,
    EtcdTLSError,
    KeyNotFound,
    TestFailed,
)

if TYPE_CHECKING:
    from txetcd2.client import EtcdClient


def clock_of(client: EtcdClient, clock: IReactorTime | None = None) -> IReactorTime:
    """
    The clock a recipe schedules its timers on.

    :param client: the client the recipe uses.
    :param clock: an explicit clock, or ``None`` for the client's reactor.
    :returns: the clock.
    :raises TypeError: if ``client`` is not an :class:`EtcdClient`.
    """
    if not all(callable(getattr(client, name, None)) for name in _CLIENT_METHODS):
        raise TypeError(f"client must be an EtcdClient, not {type(client).__name__}")
    if clock is not None:
        return clock
    return client.clock


#: What the recipes call on a client (checked by duck typing, so that this
#: layer needs no import of the client module at run time).
_CLIENT_METHODS = ("append", "get", "create", "set", "refresh", "watch", "watcher")


def transient(error: EtcdError) -> bool:
    """
    Whether an error may go away by itself (a member down or slow, an
    election, a lost answer), as opposed to a configuration or usage error
    (TLS, auth, v2 disabled, a key that is not a directory...).
    """
    if isinstance(error, EtcdTLSError):
        return False
    return isinstance(
        error, EtcdConnectionError | EtcdRaftError | EtcdOutcomeUnknown | EtcdStaleAnswer
    )


def check_ttl(ttl: object) -> int:
    """
    Check a recipe's TTL: whole seconds, at least 2 (renewals run every third of it).

    :returns: the TTL.
    :raises TypeError: if it is not an int.
    :raises ValueError: if it is less than 2.
    """
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise TypeError(f"ttl must be an int number of seconds, not {type(ttl).__name__}")
    if ttl < 2:
        raise ValueError(f"ttl must be at least 2 seconds, not {ttl}")
    return ttl


def check_name(name: object, what: str = "name") -> str:
    """
    Check the name of a lock or election: one or more key segments.

    :returns: the name without leading or trailing slashes.
    :raises TypeError: if it is not a string.
    :raises ValueError: if it is empty or has empty, ``.`` or ``..`` segments.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__}")
    stripped = name.strip("/")
    segments = stripped.split("/")
    if not stripped or any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"{what} must be key segments like 'jobs/nightly', not {name!r}")
    return stripped


def check_seconds(value: object, what: str, zero_ok: bool = False) -> float:
    """
    Check a duration in seconds.

    :returns: it, as a float.
    :raises TypeError: if it is not a number.
    :raises ValueError: if it is negative (or zero, unless ``zero_ok``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{what} must be more than 0 seconds, not {value!r}")
    return float(value)


def check_prefix(prefix: object) -> str:
    """
    Check a directory prefix such as ``"/_txetcd2/locks"``.

    :returns: it, starting with ``/`` and without a trailing ``/``.
    """
    return "/" + check_name(prefix, "prefix")


class Emitter:
    """
    Callbacks by event name; a callback that raises is logged, the others still run.

    :param names: the event names accepted by :meth:`on`.
    :param owner: who emits, for the log.
    """

    log = PublicLogger(namespace="txetcd2.recipes")

    def __init__(self, names: tuple[str, ...], owner: str) -> None:
        self._names = names
        self._owner = owner
        self._callbacks: dict[str, list[Callable[..., object]]] = {}

    def on(self, name: str, callback: Callable[..., object]) -> None:
        """
        Call ``callback`` on the event ``name``.

        :raises ValueError: for an unknown name.
        :raises TypeError: if ``callback`` is not callable.
        """
        if name not in self._names:
            raise ValueError(f"unknown event {name!r}; use one of {', '.join(self._names)}")
        if not callable(callback):
            raise TypeError(f"the {name!r} callback must be callable")
        self._callbacks.setdefault(name, []).append(callback)

    def off(self, name: str, callback: Callable[..., object]) -> None:
        """
        Stop calling a callback registered with :meth:`on`.

        :raises ValueError: if it was not registered for that name.
        """
        try:
            self._callbacks.get(name, []).remove(callback)
        except ValueError:
            raise ValueError(f"{callback!r} is not registered for {name!r}") from None

    def emit(self, name: str, *args: Any) -> None:
        """
        Call the callbacks of ``name`` with ``args`` (or with no argument, for
        a callback that takes none).
        """
        for callback in list(self._callbacks.get(name, ())):
            try:
                callback(*args) if _takes(callback, len(args)) else callback()
            except Exception:
                self.log.failure(
                    "{owner}: a {name!r} callback raised", Failure(), owner=self._owner, name=name
                )


def _takes(callback: Callable[..., object], count: int) -> bool:
    """
    Whether ``callback`` can be called with ``count`` positional arguments
    (``True`` when its signature cannot be read).
    """
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        try:
            signature.bind()
        except TypeError:
            return True  # neither fits: call with the arguments, and report the error
        return False
    return True


async def delete_if_ours(
    client: EtcdClient, key: str, created_index: int, modified_index: int, attempts: int = 5
) -> bool:
    """
    Delete ``key`` only while it is still the node created at ``created_index``.

    First a compare-and-delete on ``modified_index`` (one request when nothing
    changed the key since); when that comparison fails (a TTL refresh moved
    the index) or its outcome is unknown, read the key again and retry.

    :returns: whether this call deleted the key (``False``: it was gone or
        is someone else's).
    :raises EtcdError: when etcd could not be reached ``attempts`` times.
    """
    index = modified_index
    for attempt in range(attempts):
        try:
            await client.compare_and_delete(key, prev_index=index)
            return True
        except KeyNotFound:
            return False
        except (TestFailed, EtcdOutcomeUnknown):
            if attempt == attempts - 1:
                raise
        try:
            node = (await client.get(key, quorum=True)).node
        except KeyNotFound:
            return False
        if node.created_index != created_index:
            return False
        index = node.modified_index
    return False  # pragma: no cover - the loop returns or raises


def giving_up(log: PublicLogger, what: str, key: str, error: EtcdError) -> Failure:
    """
    Log, once, that a recipe stops on an error retrying cannot fix.

    :param log: the recipe's logger.
    :param what: the recipe, for the log line (``"election"``...).
    :param key: its key.
    :param error: the error.
    :returns: the error, for the recipe's ``failure``.
    """
    log.error(
        "{what} {key}: {error}; giving up (retrying cannot fix this)",
        what=what,
        key=key,
        error=str(error),
    )
    return Failure(error)


async def or_let_expire(
    delete: Callable[[], Awaitable[object]], log: PublicLogger, what: str, key: str, ttl: int
) -> bool:
    """
    Wait for the deletion of a recipe's TTL key when it stops; when the
    client cannot delete it (an error retrying cannot fix: a closed client,
    credentials refused...), say that the key expires by itself rather than
    fail the stop.

    :param delete: starts the deletion (a closed client raises at once).
    :param log: the recipe's logger.
    :param what: the recipe, for the log line (``"registration"``...).
    :param key: the key.
    :param ttl: its TTL.
    :returns: whether the deletion ran to its end.
    :raises EtcdError: the deletion's other errors.
    """
    try:
        await delete()
    except EtcdError as e:
        if not is_fatal(e):
            raise
        log.warn(
            "{what} {key}: not deleted ({error}); it expires {ttl}s after its last renewal",
            what=what,
            key=key,
            error=str(e),
            ttl=ttl,
        )
        return False
    return True
