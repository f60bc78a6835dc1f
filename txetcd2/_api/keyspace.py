"""
The key space as the client offers it: the key calls, plus conveniences that
users of python-etcd and aio_etcd look for (an existence check, a directory as
a mapping, JSON values, and a read-modify-write that retries on conflicts).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from txetcd2._api.keys import KeyCalls
from txetcd2._api.missing import MISSING
from txetcd2._session.session import Request
from txetcd2._transport.deadline import Deadline
from txetcd2._wire.answers import RawResponse
from txetcd2._wire.errors import KeyNotFound, NodeExist, NotDir, TestFailed, ValueNotJSON
from txetcd2._wire.keys import (
    canonical_path,
    check_int,
    check_request_line,
    check_seconds,
    flag,
    normalize_key,
)
from txetcd2._wire.models import EtcdNode, EtcdResponse


def _relative(node: EtcdNode, base: str) -> str:
    prefix = base.rstrip("/") + "/"
    return node.key[len(prefix) :] if node.key.startswith(prefix) else node.key


class KeySpace(KeyCalls):
    """
    etcd's v2 key space over a session: the key calls of
    :class:`~txetcd2._api.keys.KeyCalls` and conveniences built on them.
    """

    def exists(self, key: str, *, timeout: float | None = None) -> Deferred[bool]:
        """
        Tell whether a key (or directory) exists, with a ``HEAD`` request (no body).

        :param key: the key.
        :param timeout: the call's deadline.
        :returns: a Deferred firing with ``True`` or ``False``.
        """
        canonical = normalize_key(key)
        target = check_request_line("HEAD", canonical_path(canonical), [])
        request = Request("HEAD", target, canonical, True, keyspace=True, check_v2=False)
        deadline = self._session.deadline(check_seconds(timeout))
        return self._session.run(self._exists(request, deadline))

    async def _exists(self, request: Request, deadline: Deadline) -> bool:
        raw: RawResponse = await self._session.request(request, deadline)
        if raw.status == 200:
            return True
        if raw.status == 404 and raw.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return False
        # A HEAD answer has no body to explain itself: ask again with a GET,
        # which raises the typed error (v2 disabled, unauthorized, ...).
        try:
            await self.get(request.what, timeout=deadline.remaining())
        except KeyNotFound:
            return False
        return True

    def children(
        self,
        key: str,
        *,
        recursive: bool = False,
        quorum: bool = False,
        timeout: float | None = None,
    ) -> Deferred[dict[str, str | None]]:
        """
        Read a directory as a mapping of its children, by name relative to it.

        One level: each child's name maps to its value, or to ``None`` for a
        subdirectory. ``recursive=True``: every value below, by relative path
        (``"sub/leaf"``); empty directories do not appear.

        :param key: the directory.
        :param recursive: read the whole subtree.
        :param quorum: read through the leader (never stale).
        :param timeout: the call's deadline.
        :returns: a Deferred firing with the mapping, in key order.
        :raises NotDir: (in the Deferred) if the key is not a directory.
        :raises KeyNotFound: (in the Deferred) if it does not exist.
        """
        flag(recursive, "recursive")
        d = self.get(key, recursive=recursive, sorted=True, quorum=quorum, timeout=timeout)
        return d.addCallback(_mapping, recursive)

    def get_json(
        self, key: str, default: Any = MISSING, *, timeout: float | None = None
    ) -> Deferred[Any]:
        """
        Read a key whose value is JSON.

        :param key: the key.
        :param default: what to fire with when the key does not exist;
            without it, a missing key fails with :class:`KeyNotFound`.
        :param timeout: the call's deadline.
        :returns: a Deferred firing with the decoded value.
        :raises ValueNotJSON: (in the Deferred) when the value is not JSON.
        """
        d: Deferred[Any] = (
            self.get_value(key, timeout=timeout)
            if default is MISSING
            else self.get_value(key, default, timeout=timeout)
        )
        return d.addCallback(_decode_json, key, default)

    def set_json(
        self,
        key: str,
        value: Any,
        *,
        ttl: int | None = None,
        timeout: float | None = None,
    ) -> Deferred[EtcdResponse]:
        """
        Store a value as JSON (compact, keys sorted, UTF-8 kept).

        :param key: the key.
        :param value: anything :func:`json.dumps` takes.
        :param ttl: seconds until the key expires.
        :param timeout: the call's deadline.
        :returns: a Deferred firing with the response.
        :raises TypeError: when the value cannot be encoded as JSON.
        """
        return self.set(key, encode_json(value), ttl=ttl, timeout=timeout)

    def modify(
        self,
        key: str,
        change: Callable[[str | None], str],
        *,
        attempts: int = 10,
        ttl: int | None = None,
        timeout: float | None = None,
    ) -> Deferred[EtcdResponse]:
        """
        Read-modify-write: set ``key`` to ``change(current)``, retrying when
        another writer changed it in between.

        The key is read with ``quorum=True``; the new value is written with a
        compare-and-swap on the read's ``modified_index`` (or a create when the
        key was missing, ``change(None)``). On ``TestFailed``/``NodeExist`` the
        whole cycle runs again, up to ``attempts`` times. ``change`` must have
        no side effects: it may run several times.

        :param key: the key.
        :param change: the current value (``None`` when missing) -> the new one.
        :param attempts: how many cycles before giving up.
        :param ttl: the new TTL, if any.
        :param timeout: each read's and write's deadline.
        :returns: a Deferred firing with the write's response.
        :raises TestFailed: (in the Deferred) when every attempt lost the race.
        """
        if not callable(change):
            raise TypeError("change must be a callable taking the current value (or None)")
        check_int(attempts, "attempts", 1)
        canonical = normalize_key(key)
        check_seconds(timeout)
        return self._session.run(self._modify(canonical, change, attempts, ttl, timeout))

    async def _modify(
        self,
        key: str,
        change: Callable[[str | None], str],
        attempts: int,
        ttl: int | None,
        timeout: float | None,
    ) -> EtcdResponse:
        for attempt in range(1, attempts + 1):
            try:
                current = await self.get(key, quorum=True, timeout=timeout)
            except KeyNotFound:
                try:
                    return await self.create(key, change(None), ttl=ttl, timeout=timeout)
                except NodeExist:
                    continue
            node = current.node
            try:
                return await self.compare_and_swap(
                    key,
                    change(node.value),
                    prev_index=node.modified_index,
                    ttl=ttl,
                    timeout=timeout,
                )
            except (TestFailed, KeyNotFound):
                if attempt == attempts:
                    raise
        raise TestFailed(101, "Compare failed", f"{key}: {attempts} attempts lost the race")


def encode_json(value: Any) -> str:
    """
    Encode a value as compact JSON text.

    :param value: the value.
    :returns: the JSON text.
    :raises TypeError: when it cannot be encoded.
    """
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"the value cannot be stored as JSON: {e}") from None


def _decode_json(value: Any, key: str, default: Any) -> Any:
    if value is default and default is not MISSING:
        return value
    try:
        return json.loads(value)
    except ValueError as e:
        raise ValueNotJSON(key, str(e)) from None


def _mapping(response: EtcdResponse, recursive: bool) -> dict[str, str | None]:
    base = response.node
    if not base.dir:
        raise NotDir(104, "Not a directory", base.key, response.etcd_index, 200)
    if recursive:
        return {
            _relative(n, base.key): n.value
            for n in base.walk()
            if not n.dir and n.value is not None
        }
    return {_relative(n, base.key): (None if n.dir else n.value) for n in base.nodes}
