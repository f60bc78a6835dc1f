"""
The key space: reading, writing and watching keys, over a session.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar, overload
from urllib.parse import urlencode

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txetcd2._api.missing import MISSING
from txetcd2._logs import PublicLogger
from txetcd2._session.session import Request, Session, make_request
from txetcd2._transport.deadline import Deadline
from txetcd2._wire.answers import RawResponse, error_for
from txetcd2._wire.errors import EtcdProtocolError, EtcdTimeout, KeyNotFound, NotFile
from txetcd2._wire.keys import (
    Query,
    check_duration,
    check_index,
    check_int,
    check_prev_value,
    check_request_line,
    check_seconds,
    check_ttl,
    check_value,
    flag,
    key_path,
    key_target,
    normalize_key,
)
from txetcd2._wire.models import DecodeError, EtcdResponse, decode_response, header_int

_T = TypeVar("_T")


def _add_flag(query: Query, name: str, value: bool) -> None:
    if flag(value, name) == "true":
        query.append((name, "true"))


def _add_quiet(query: Query, no_value_on_success: bool) -> None:
    if flag(no_value_on_success, "no_value_on_success") == "true":
        query.append(("noValueOnSuccess", "true"))


def _add_compare(query: Query, prev_value: str | None, prev_index: int | None) -> None:
    if prev_value is not None:
        query.append(("prevValue", check_prev_value(prev_value)))
    if prev_index is not None:
        query.append(("prevIndex", str(check_index(prev_index, "prev_index"))))


#: Values a form carries as they are (``urlencode`` leaves them unchanged).
_FORM_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")


def _value_form(value: str, ttl: int | None) -> bytes:
    # A write's form: the value is required (None is a TypeError, never "").
    if ttl is None and type(value) is str and _FORM_SAFE.fullmatch(value):
        return b"value=" + value.encode("ascii")  # the usual set: nothing to check or encode
    return _form(check_value(value), ttl)


def _form(value: str | None = None, ttl: int | None = None, refresh: bool = False) -> bytes:
    if value is not None:
        value = check_value(value)
        if ttl is None and not refresh and _FORM_SAFE.fullmatch(value):
            return b"value=" + value.encode("ascii")  # the usual set: nothing to encode
    fields: list[tuple[str, str]] = []
    if value is not None:
        fields.append(("value", value))
    if ttl is not None:
        fields.append(("ttl", str(check_ttl(ttl))))
    if refresh:
        fields.append(("refresh", "true"))
    return urlencode(fields).encode("ascii")


def decode(raw: RawResponse, key: str = "/") -> EtcdResponse:
    """
    Turn a key-space answer into a response, or raise the error it carries.

    :param raw: the answer.
    :param key: the key asked about: the node of an answer shrunk by
        ``noValueOnSuccess`` (``{"action": ...}`` only).
    :returns: the response, for a 200 or 201.
    :raises EtcdError: the typed error for anything else, and
        :class:`EtcdProtocolError` for an answer etcd never sends (no JSON, no
        ``X-Etcd-Index``).
    """
    if raw.status not in (200, 201):
        raise error_for(raw)
    index = header_int(raw.headers, "x-etcd-index")
    if index is None:
        raise EtcdProtocolError(
            raw.endpoint, raw.status, "a key-space answer without X-Etcd-Index", raw.body
        )
    try:
        return decode_response(raw.body, raw.headers, key, index)
    except DecodeError as e:
        raise EtcdProtocolError(raw.endpoint, raw.status, str(e), raw.body) from None


def _value_of(response: EtcdResponse) -> str:
    if response.node.dir:
        raise NotFile(102, "Not a file", response.node.key, response.etcd_index, 200)
    return response.node.value or ""


def _missing(failure: Failure, default: Any) -> Any:
    if default is MISSING or failure.check(KeyNotFound) is None:
        return failure
    return default


def check_retries(max_retries: int | None) -> int | None:
    """
    Check a call's ``max_retries=``.

    :param max_retries: back-offs allowed for this call; ``None`` for the client's.
    :returns: the value.
    :raises TypeError: if it is not an ``int``.
    :raises ValueError: if it is negative.
    """
    return None if max_retries is None else check_int(max_retries, "max_retries", 0)


class KeyCalls:
    """
    etcd's v2 key space over a session: every call checks its arguments
    before any I/O and returns a cancellable Deferred.

    Every call takes ``timeout=`` (the deadline of the whole call, default:
    the client's) and ``max_retries=`` (how many back-offs this call may
    take, default: the client's).

    :param session: the session every request goes through.
    :param watch_timeout: how long one long-poll of :meth:`watch` waits
        before it is renewed (etcd sends no heartbeat).
    """

    log = PublicLogger(namespace="txetcd2.client")

    def __init__(self, session: Session, watch_timeout: float = 60.0) -> None:
        self._session = session
        self._watch_timeout = check_duration(watch_timeout, "watch_timeout")

    def _keys(
        self,
        method: str,
        key: str,
        query: Query,
        form: bytes | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[EtcdResponse]:
        canonical, path = key_target(key)
        target = check_request_line(method, path, query)
        request = make_request(method, target, canonical, idempotent, form, keyspace=True)
        deadline = self._session.deadline(None if timeout is None else check_seconds(timeout))
        retries = None if max_retries is None else check_retries(max_retries)
        return self._session.call(request, deadline, retries, decode)

    # -- reading -------------------------------------------------------------

    def get(
        self,
        key: str,
        *,
        recursive: bool = False,
        sorted: bool = False,
        quorum: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[EtcdResponse]:
        """
        Read a key, or list a directory.

        :param key: the key (``"a/b"`` and ``"/a/b"`` are the same).
        :param recursive: list a directory's whole subtree.
        :param sorted: list children in key order.
        :param quorum: read through the leader (never stale) instead of
            from the member's local copy.
        :returns: a Deferred firing with the response.
        :raises KeyNotFound: (in the Deferred) if the key does not exist.
        """
        query: Query = []
        if recursive is not False or sorted is not False or quorum is not False:
            _add_flag(query, "recursive", recursive)
            _add_flag(query, "sorted", sorted)
            _add_flag(query, "quorum", quorum)
        return self._keys("GET", key, query, timeout=timeout, max_retries=max_retries)

    @overload
    def get_value(
        self, key: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Deferred[str]: ...

    @overload
    def get_value(
        self,
        key: str,
        default: _T,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[str | _T]: ...

    def get_value(
        self,
        key: str,
        default: Any = MISSING,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[Any]:
        """
        Read a key's value.

        :param key: the key.
        :param default: what to fire with when the key does not exist;
            without it, a missing key fails with :class:`KeyNotFound`.
        :returns: a Deferred firing with the value.
        :raises NotFile: (in the Deferred) if the key is a directory.
        """
        canonical, path = key_target(key)
        target = check_request_line("GET", path, [])
        request = Request("GET", target, canonical, True, keyspace=True)
        deadline = self._session.deadline(None if timeout is None else check_seconds(timeout))
        retries = None if max_retries is None else check_retries(max_retries)
        found = self._session.call(request, deadline, retries, decode)
        return found.addCallbacks(_value_of, _missing, errbackArgs=(default,))

    # -- writing -------------------------------------------------------------

    def set(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        prev_value: str | None = None,
        prev_index: int | None = None,
        prev_exist: bool | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        no_value_on_success: bool = False,
    ) -> Deferred[EtcdResponse]:
        """
        Set a key's value, creating or replacing it.

        :param key: the key.
        :param value: the value.
        :param ttl: seconds until the key expires; without it the key never
            expires (an existing TTL is removed).
        :param prev_value: only if the current value is this.
        :param prev_index: only if the key was last modified at this index.
        :param prev_exist: only if the key exists (``True``) or does not
            (``False``).
        :param no_value_on_success: ask etcd to answer only ``{"action": ...}``
            (its ``noValueOnSuccess``), saving the echo of a large value; the
            response's node then has only the key and its ``modified_index``.
        :returns: a Deferred firing with the response.
        """
        query: Query = []
        if prev_value is not None or prev_index is not None:
            _add_compare(query, prev_value, prev_index)
        if prev_exist is not None:
            query.append(("prevExist", flag(prev_exist, "prev_exist")))
        conditional = bool(query)
        if no_value_on_success is not False:
            _add_quiet(query, no_value_on_success)
        return self._keys(
            "PUT",
            key,
            query,
            _value_form(value, ttl),
            idempotent=not conditional,
            timeout=timeout,
            max_retries=max_retries,
        )

    def create(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        no_value_on_success: bool = False,
    ) -> Deferred[EtcdResponse]:
        """
        Create a key that must not exist yet.

        :param key: the key.
        :param value: the value.
        :param ttl: seconds until the key expires.
        :param no_value_on_success: ask etcd to answer only ``{"action": ...}``
            (its ``noValueOnSuccess``), saving the echo of a large value; the
            response's node then has only the key and its ``modified_index``.
        :returns: a Deferred firing with the response.
        :raises NodeExist: (in the Deferred) if the key exists.
        """
        query: Query = [("prevExist", "false")]
        _add_quiet(query, no_value_on_success)
        form = _value_form(value, ttl)
        return self._keys("PUT", key, query, form, False, timeout, max_retries)

    def update(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        no_value_on_success: bool = False,
    ) -> Deferred[EtcdResponse]:
        """
        Change a key that must exist already.

        Without ``ttl``, an existing TTL is removed (etcd's behaviour).

        :param key: the key.
        :param value: the value.
        :param ttl: seconds until the key expires.
        :param no_value_on_success: ask etcd to answer only ``{"action": ...}``
            (its ``noValueOnSuccess``), saving the echo of a large value; the
            response's node then has only the key and its ``modified_index``.
        :returns: a Deferred firing with the response.
        :raises KeyNotFound: (in the Deferred) if the key does not exist.
        """
        query: Query = [("prevExist", "true")]
        _add_quiet(query, no_value_on_success)
        form = _value_form(value, ttl)
        return self._keys("PUT", key, query, form, False, timeout, max_retries)

    def refresh(
        self, key: str, ttl: int, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Deferred[EtcdResponse]:
        """
        Reset a key's TTL without changing its value and without waking watchers.

        :param key: the key.
        :param ttl: the new TTL in seconds.
        :returns: a Deferred firing with the response.
        :raises KeyNotFound: (in the Deferred) if the key does not exist.
        """
        form = _form(ttl=ttl, refresh=True)
        return self._keys("PUT", key, [("prevExist", "true")], form, False, timeout, max_retries)

    def append(
        self,
        dir_key: str,
        value: str,
        *,
        ttl: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[EtcdResponse]:
        """
        Create an in-order key in a directory (named by its index).

        :param dir_key: the directory (created if needed).
        :param value: the value.
        :param ttl: seconds until the key expires.
        :returns: a Deferred firing with the response; ``node.key`` is the new key.
        """
        return self._keys(
            "POST", dir_key, [], _value_form(value, ttl), False, timeout, max_retries
        )

    def delete(
        self,
        key: str,
        *,
        recursive: bool = False,
        dir: bool = False,
        prev_value: str | None = None,
        prev_index: int | None = None,
        missing_ok: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[EtcdResponse | None]:
        """
        Delete a key or directory.

        :param key: the key.
        :param recursive: delete a directory with everything below it.
        :param dir: delete an empty directory.
        :param prev_value: only if the current value is this.
        :param prev_index: only if the key was last modified at this index.
        :param missing_ok: fire with ``None`` instead of failing with
            :class:`KeyNotFound` when the key does not exist.
        :returns: a Deferred firing with the response.
        """
        query: Query = []
        _add_flag(query, "recursive", recursive)
        _add_flag(query, "dir", dir)
        _add_compare(query, prev_value, prev_index)
        flag(missing_ok, "missing_ok")
        d: Deferred[Any] = self._keys("DELETE", key, query, None, False, timeout, max_retries)
        if missing_ok:
            d.addErrback(lambda f: f.trap(KeyNotFound) and None)
        return d

    def compare_and_swap(
        self,
        key: str,
        value: str,
        *,
        prev_value: str | None = None,
        prev_index: int | None = None,
        ttl: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        no_value_on_success: bool = False,
    ) -> Deferred[EtcdResponse]:
        """
        Set a key only if it still has the given value and/or index.

        :param key: the key.
        :param value: the new value.
        :param prev_value: the value it must have now.
        :param prev_index: the index it must have been modified at.
        :param ttl: seconds until the key expires.
        :param no_value_on_success: ask etcd to answer only ``{"action": ...}``
            (its ``noValueOnSuccess``), saving the echo of a large value; the
            response's node then has only the key and its ``modified_index``.
        :returns: a Deferred firing with the response.
        :raises ValueError: if neither condition is given.
        :raises TestFailed: (in the Deferred) if the condition did not hold.
        """
        if prev_value is None and prev_index is None:
            raise ValueError("compare_and_swap needs prev_value, prev_index or both")
        query: Query = []
        _add_compare(query, prev_value, prev_index)
        _add_quiet(query, no_value_on_success)
        return self._keys("PUT", key, query, _value_form(value, ttl), False, timeout, max_retries)

    def compare_and_delete(
        self,
        key: str,
        *,
        prev_value: str | None = None,
        prev_index: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[EtcdResponse]:
        """
        Delete a key only if it still has the given value and/or index.

        :param key: the key.
        :param prev_value: the value it must have now.
        :param prev_index: the index it must have been modified at.
        :returns: a Deferred firing with the response.
        :raises ValueError: if neither condition is given.
        :raises TestFailed: (in the Deferred) if the condition did not hold.
        """
        if prev_value is None and prev_index is None:
            raise ValueError("compare_and_delete needs prev_value, prev_index or both")
        query: Query = []
        _add_compare(query, prev_value, prev_index)
        return self._keys("DELETE", key, query, None, False, timeout, max_retries)

    def mkdir(
        self,
        key: str,
        *,
        ttl: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[EtcdResponse]:
        """
        Create a directory that must not exist yet.

        :param key: the directory.
        :param ttl: seconds until it expires, with everything below it.
        :returns: a Deferred firing with the response.
        :raises NodeExist: (in the Deferred) if the key exists.
        """
        query: Query = [("dir", "true"), ("prevExist", "false")]
        return self._keys("PUT", key, query, _form(ttl=ttl), False, timeout, max_retries)

    def rmdir(
        self,
        key: str,
        *,
        recursive: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Deferred[EtcdResponse]:
        """
        Remove a directory.

        :param key: the directory.
        :param recursive: remove everything below it too; without it the
            directory must be empty.
        :returns: a Deferred firing with the response.
        :raises DirNotEmpty: (in the Deferred) if it has children.
        """
        query: Query = [("dir", "true")]
        _add_flag(query, "recursive", recursive)
        return self._keys("DELETE", key, query, None, False, timeout, max_retries)

    # -- watching ------------------------------------------------------------

    def watch(
        self,
        key: str,
        *,
        index: int | None = None,
        recursive: bool = False,
        timeout: float | None = None,
    ) -> Deferred[EtcdResponse]:
        """
        Wait for the next change of a key (one long-poll).

        The poll is renewed every ``watch_timeout`` seconds, from the index
        etcd reported when it accepted the previous poll, so no change is
        missed between polls.

        :param key: the key or directory.
        :param index: wait for the first change at or after this index
            (default: the next change).
        :param recursive: watch everything below a directory.
        :param timeout: seconds to wait for the event (default: no limit;
            each renewed poll's headers are bounded by the client's timeout).
        :returns: a Deferred firing with the event.
        :raises EventIndexCleared: (in the Deferred) if ``index`` is older than
            etcd's event history.
        :raises EtcdTimeout: (in the Deferred) when ``timeout`` ran out first.
        """
        path = key_path(key)
        if index is not None:
            check_index(index, "index")
        query: Query = [("wait", "true")]
        _add_flag(query, "recursive", recursive)
        check_request_line("GET", path, [*query, ("waitIndex", str(2**63))])
        deadline = Deadline(self._session.clock, check_seconds(timeout))
        return self._session.run(self._watch(normalize_key(key), path, query, index, deadline))

    async def _watch(
        self, key: str, path: str, query: Query, index: int | None, deadline: Deadline
    ) -> EtcdResponse:
        session = self._session
        while True:
            target = check_request_line(
                "GET", path, [*query, ("waitIndex", str(index))] if index else query
            )
            request = Request("GET", target, key, True, keyspace=True)
            remaining = deadline.remaining()
            if remaining is None:
                answered, wait = session.deadline(None), self._watch_timeout
            else:
                # The headers come at once; the event within what remains.
                answered = Deadline(session.clock, min(session.timeout, remaining))
                wait = min(remaining, self._watch_timeout)
            raw, complete = await session.poll(request, answered, wait)
            if raw.status != 200:
                raise error_for(raw)
            if complete and raw.body.strip():
                return decode(raw)
            started = header_int(raw.headers, "x-etcd-index")
            if started is None:
                raise EtcdProtocolError(raw.endpoint, 200, "a watch answer without X-Etcd-Index")
            index = max(index or 0, started + 1)
            if deadline.remaining() == 0:
                raise EtcdTimeout(raw.endpoint, f"watch {key}: no change", deadline.seconds or 0.0)
            self.log.debug("watch {key} renewed from {index}", key=key, index=index)
