"""
The key-space client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar, overload
from urllib.parse import urlencode

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IResolver
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import IAgent

from txetcd2._api import admin as _admin
from txetcd2._api.auth import AuthAPI
from txetcd2._api.status import ClusterStatus, cluster_status
from txetcd2._reactor import default_reactor
from txetcd2._session.disabled import check_enabled
from txetcd2._session.discovery import MemberSync, default_resolver, endpoints_from_srv
from txetcd2._session.members import Cluster, parse_endpoints
from txetcd2._session.redirect import send_following
from txetcd2._session.retry import RetryPolicy, check_retry_policy
from txetcd2._transport.agent import caching_agent, etcd_http_client
from txetcd2._transport.exchange import Exchange
from txetcd2._transport.tls import PEMSource, check_tls_options
from txetcd2._watch.watcher import Watcher
from txetcd2._wire.admin_models import Member, RawAnswer
from txetcd2._wire.answers import RawResponse, error_for
from txetcd2._wire.credentials import check_credentials
from txetcd2._wire.errors import EtcdError, EtcdProtocolError, KeyNotFound, NotFile
from txetcd2._wire.keys import (
    Query,
    canonical_path,
    check_index,
    check_int,
    check_prev_value,
    check_request_line,
    check_ttl,
    check_value,
    flag,
    key_path,
    normalize_key,
)
from txetcd2._wire.models import DecodeError, EtcdResponse, decode_response

_T = TypeVar("_T")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _add_flag(query: Query, name: str, value: bool) -> None:
    if flag(value) == "true":
        query.append((name, "true"))


def _add_compare(query: Query, prev_value: str | None, prev_index: int | None) -> None:
    if prev_value is not None:
        query.append(("prevValue", check_prev_value(prev_value)))
    if prev_index is not None:
        query.append(("prevIndex", str(check_index(prev_index, "prev_index"))))


#: Values a form carries as they are (``urlencode`` leaves them unchanged).
_FORM_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")


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


def _check_timeout(timeout: float | None, what: str = "timeout") -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{what} must be a number of seconds, not {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"{what} must be more than 0 seconds, not {timeout!r}")
    return float(timeout)


def decode(raw: RawResponse) -> EtcdResponse:
    """
    Turn a key-space answer into a response, or raise the error it carries.

    :param raw: the answer.
    :returns: the response, for a 200 or 201.
    :raises EtcdError: the typed error for anything else.
    """
    if raw.status not in (200, 201):
        raise error_for(raw)
    try:
        return decode_response(raw.body, raw.headers)
    except DecodeError as e:
        raise EtcdProtocolError(raw.endpoint, raw.status, str(e), raw.body) from None


class EtcdClient:
    """
    A client for etcd's v2 key space.

    Every method returns a :class:`~twisted.internet.defer.Deferred`;
    cancelling it aborts the request. Arguments are checked before any I/O:
    bad ones raise :class:`TypeError` or :class:`ValueError` at once.

    :param endpoints: one member's URL, a comma-separated list, or a sequence
        of URLs, e.g. ``"http://127.0.0.1:2379"``.
    :param reactor: the reactor (default: the global one).
    :param timeout: seconds to wait for an answer to a request (not for a
        watch's event).
    :param agent: the HTTP agent (default: an :class:`Agent` over a pool of
        persistent connections owned by the client).
    :param pool_size: how many idle connections to keep per member.
    :param watch_timeout: how long one long-poll of :meth:`watch` waits
        before it is renewed (etcd sends no heartbeat).
    :param ca: for ``https://``: the CA certificates to trust (a path or PEM
        bytes); default: the system trust store.
    :param cert: a client certificate (path or PEM bytes).
    :param key: its private key (path or PEM bytes); default: in ``cert``.
    :param passphrase: the key's passphrase, if it is encrypted.
    :param verify: ``False`` turns off every check of the server's
        certificate (logged; never do this in production).
    :param username: the user for etcd's basic auth, sent with every request.
    :param password: its password (never logged nor shown).
    :param allow_insecure_auth: allow sending the password over plain
        ``http://`` endpoints.
    :ivar auth: etcd's auth API (:class:`~txetcd2.auth.AuthAPI`).
    :param max_retries: how many times one request backs off before it fails
        (the members are all tried before each back-off).
    :param retry_policy: seconds to wait before back-off ``n`` (from 0);
        default: :func:`~twisted.application.internet.backoffPolicy` from
        0.25 s doubling up to 4 s.
    :param sync_interval: when set, :meth:`start` refreshes the member list
        from ``/v2/members`` every this many seconds.
    :param prefer_leader: send requests to the leader first (found by the
        member sync that :meth:`start` begins).
    """

    log = Logger()

    def __init__(
        self,
        endpoints: str | Sequence[str] = "http://127.0.0.1:2379",
        *,
        reactor: Any = None,
        timeout: float = 5.0,
        agent: IAgent | None = None,
        pool_size: int = 64,
        watch_timeout: float = 60.0,
        ca: PEMSource | None = None,
        cert: PEMSource | None = None,
        key: PEMSource | None = None,
        passphrase: str | bytes | None = None,
        verify: bool = True,
        username: str | None = None,
        password: str | None = None,
        allow_insecure_auth: bool = False,
        max_retries: int = 4,
        retry_policy: RetryPolicy | None = None,
        sync_interval: float | None = None,
        prefer_leader: bool = False,
    ) -> None:
        if reactor is None:
            reactor = default_reactor()
        self._reactor = reactor
        self._timeout = float(timeout)
        self._watch_timeout = float(watch_timeout)
        self._cluster = Cluster(
            parse_endpoints(endpoints),
            reactor,
            max_retries=check_int(max_retries, "max_retries", 0),
            retry_policy=None if retry_policy is None else check_retry_policy(retry_policy),
        )
        _check_timeout(sync_interval, "sync_interval")
        credentials = check_credentials(
            username, password, self._cluster.endpoints, allow_insecure_auth
        )
        tls = check_tls_options(agent, ca, cert, key, passphrase, verify)
        self._pool: HTTPConnectionPool | None = None
        if agent is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = check_int(pool_size, "pool_size", 1)
            self._pool.retryAutomatically = False
            agent = caching_agent(reactor, self._pool, tls, self._timeout)
        self._exchange = Exchange(etcd_http_client(agent), reactor)
        if credentials is not None:
            self._exchange.auth_header = credentials.header()
        self.auth = AuthAPI(self._cluster, self._exchange, self._run, self._timeout)
        self._sync = MemberSync(
            self._cluster,
            self._exchange,
            reactor,
            sync_interval,
            flag(prefer_leader) == "true",
            self._timeout,
        )
        self._pending: set[Deferred[Any]] = set()
        self._closed = False

    @classmethod
    def from_srv(
        cls, domain: str, *, resolver: IResolver | None = None, reactor: Any = None, **options: Any
    ) -> Deferred[EtcdClient]:
        """
        Build a client for the members published in DNS SRV records.

        ``_etcd-client-ssl._tcp.<domain>`` gives ``https`` members and
        ``_etcd-client._tcp.<domain>`` ``http`` ones.

        :param domain: the DNS domain, like ``"example.com"``.
        :param resolver: the resolver (default: one over the name servers of
            ``/etc/resolv.conf``).
        :param reactor: the reactor (default: the global one).
        :param options: the other :class:`EtcdClient` options.
        :returns: a Deferred firing with the client.
        :raises EtcdConnectionError: (in the Deferred) when no SRV record was found.
        """
        if not isinstance(domain, str) or not domain.strip(". "):
            raise ValueError(f"domain must be a DNS name like 'example.com', not {domain!r}")
        if reactor is None:
            reactor = default_reactor()
        found = resolver if resolver is not None else default_resolver(reactor)

        async def build() -> EtcdClient:
            endpoints = await endpoints_from_srv(domain.strip("."), found)
            return cls(endpoints, reactor=reactor, **options)

        return Deferred.fromCoroutine(build())

    def start(self) -> None:
        """
        Start the background work: the member-list sync, when
        ``sync_interval`` or ``prefer_leader`` was given. :meth:`close` stops it.
        """
        if self._closed:
            raise EtcdError("this EtcdClient is closed; create a new one")
        self._sync.start()

    def __repr__(self) -> str:
        return f"<EtcdClient {','.join(self._cluster.endpoints)}>"

    @property
    def endpoints(self) -> list[str]:
        """
        The members' base URLs, as the client knows them.
        """
        return list(self._cluster.endpoints)

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> Deferred[_T]:
        if self._closed:
            coroutine.close()
            raise EtcdError("this EtcdClient is closed; create a new one")
        d = Deferred.fromCoroutine(coroutine)
        self._pending.add(d)

        def done(result: object) -> object:
            self._pending.discard(d)
            return result

        d.addBoth(done)
        return d

    async def _request(
        self,
        method: str,
        key: str,
        target: str,
        form: bytes | None,
        idempotent: bool,
        timeout: float | None = None,
    ) -> RawResponse:
        exchange = self._exchange
        seconds = self._timeout if timeout is None else timeout

        async def attempt(endpoint: str) -> RawResponse:
            raw = await send_following(exchange, endpoint, method, target, form, seconds)
            if raw.status != 404:
                return raw  # the usual case, spared a coroutine
            return await check_enabled(exchange, raw, target, seconds)

        return await self._cluster.call(
            attempt, idempotent=idempotent, what=method, key=key, keyspace=True
        )

    def _keys(
        self,
        method: str,
        key: str,
        query: Query,
        form: bytes | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> Deferred[EtcdResponse]:
        canonical = normalize_key(key)
        target = check_request_line(method, canonical_path(canonical), query)
        _check_timeout(timeout)
        return self._run(self._keys_call(method, canonical, target, form, idempotent, timeout))

    async def _keys_call(
        self,
        method: str,
        key: str,
        target: str,
        form: bytes | None,
        idempotent: bool,
        timeout: float | None = None,
    ) -> EtcdResponse:
        # ``key`` is normalized already.
        raw = await self._request(method, key, target, form, idempotent, timeout)
        return decode(raw)

    # -- reading -------------------------------------------------------------

    def get(
        self,
        key: str,
        *,
        recursive: bool = False,
        sorted: bool = False,
        quorum: bool = False,
        timeout: float | None = None,
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
        _add_flag(query, "recursive", recursive)
        _add_flag(query, "sorted", sorted)
        _add_flag(query, "quorum", quorum)
        return self._keys("GET", key, query, timeout=timeout)

    @overload
    def get_value(self, key: str, *, timeout: float | None = None) -> Deferred[str]: ...

    @overload
    def get_value(
        self, key: str, default: _T, *, timeout: float | None = None
    ) -> Deferred[str | _T]: ...

    def get_value(
        self, key: str, default: Any = _MISSING, *, timeout: float | None = None
    ) -> Deferred[Any]:
        """
        Read a key's value.

        :param key: the key.
        :param default: what to fire with when the key does not exist;
            without it, a missing key fails with :class:`KeyNotFound`.
        :returns: a Deferred firing with the value.
        :raises NotFile: (in the Deferred) if the key is a directory.
        """
        canonical = normalize_key(key)
        target = check_request_line("GET", canonical_path(canonical), [])
        _check_timeout(timeout)
        return self._run(self._get_value(canonical, target, default, timeout))

    async def _get_value(
        self, key: str, target: str, default: Any, timeout: float | None = None
    ) -> Any:
        try:
            response = await self._keys_call("GET", key, target, None, True, timeout)
        except KeyNotFound:
            if default is _MISSING:
                raise
            return default
        if response.node.dir:
            raise NotFile(102, "Not a file", response.node.key, response.etcd_index, 200)
        return response.node.value or ""

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
        :returns: a Deferred firing with the response.
        """
        query: Query = []
        _add_compare(query, prev_value, prev_index)
        if prev_exist is not None:
            query.append(("prevExist", flag(prev_exist)))
        conditional = bool(query)
        return self._keys(
            "PUT", key, query, _form(value, ttl), idempotent=not conditional, timeout=timeout
        )

    def create(
        self, key: str, value: str, *, ttl: int | None = None, timeout: float | None = None
    ) -> Deferred[EtcdResponse]:
        """
        Create a key that must not exist yet.

        :param key: the key.
        :param value: the value.
        :param ttl: seconds until the key expires.
        :returns: a Deferred firing with the response.
        :raises NodeExist: (in the Deferred) if the key exists.
        """
        return self._keys("PUT", key, [("prevExist", "false")], _form(value, ttl), False, timeout)

    def update(
        self, key: str, value: str, *, ttl: int | None = None, timeout: float | None = None
    ) -> Deferred[EtcdResponse]:
        """
        Change a key that must exist already.

        Without ``ttl``, an existing TTL is removed (etcd's behaviour).

        :param key: the key.
        :param value: the value.
        :param ttl: seconds until the key expires.
        :returns: a Deferred firing with the response.
        :raises KeyNotFound: (in the Deferred) if the key does not exist.
        """
        return self._keys("PUT", key, [("prevExist", "true")], _form(value, ttl), False, timeout)

    def refresh(
        self, key: str, ttl: int, *, timeout: float | None = None
    ) -> Deferred[EtcdResponse]:
        """
        Reset a key's TTL without changing its value and without waking watchers.

        :param key: the key.
        :param ttl: the new TTL in seconds.
        :returns: a Deferred firing with the response.
        :raises KeyNotFound: (in the Deferred) if the key does not exist.
        """
        form = _form(ttl=ttl, refresh=True)
        return self._keys("PUT", key, [("prevExist", "true")], form, False, timeout)

    def append(
        self, dir_key: str, value: str, *, ttl: int | None = None, timeout: float | None = None
    ) -> Deferred[EtcdResponse]:
        """
        Create an in-order key in a directory (named by its index).

        :param dir_key: the directory (created if needed).
        :param value: the value.
        :param ttl: seconds until the key expires.
        :returns: a Deferred firing with the response; ``node.key`` is the new key.
        """
        return self._keys("POST", dir_key, [], _form(value, ttl), False, timeout)

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
        flag(missing_ok)
        d: Deferred[Any] = self._keys("DELETE", key, query, None, False, timeout)
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
    ) -> Deferred[EtcdResponse]:
        """
        Set a key only if it still has the given value and/or index.

        :param key: the key.
        :param value: the new value.
        :param prev_value: the value it must have now.
        :param prev_index: the index it must have been modified at.
        :param ttl: seconds until the key expires.
        :returns: a Deferred firing with the response.
        :raises ValueError: if neither condition is given.
        :raises TestFailed: (in the Deferred) if the condition did not hold.
        """
        if prev_value is None and prev_index is None:
            raise ValueError("compare_and_swap needs prev_value, prev_index or both")
        query: Query = []
        _add_compare(query, prev_value, prev_index)
        return self._keys("PUT", key, query, _form(value, ttl), False, timeout)

    def compare_and_delete(
        self,
        key: str,
        *,
        prev_value: str | None = None,
        prev_index: int | None = None,
        timeout: float | None = None,
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
        return self._keys("DELETE", key, query, None, False, timeout)

    def mkdir(
        self, key: str, *, ttl: int | None = None, timeout: float | None = None
    ) -> Deferred[EtcdResponse]:
        """
        Create a directory that must not exist yet.

        :param key: the directory.
        :param ttl: seconds until it expires, with everything below it.
        :returns: a Deferred firing with the response.
        :raises NodeExist: (in the Deferred) if the key exists.
        """
        query: Query = [("dir", "true"), ("prevExist", "false")]
        return self._keys("PUT", key, query, _form(ttl=ttl), False, timeout)

    def rmdir(
        self, key: str, *, recursive: bool = False, timeout: float | None = None
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
        return self._keys("DELETE", key, query, None, False, timeout)

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
        :returns: a Deferred firing with the event.
        :raises EventIndexCleared: (in the Deferred) if ``index`` is older than
            etcd's event history.
        """
        path = key_path(key)
        if index is not None:
            check_index(index, "index")
        query: Query = [("wait", "true")]
        _add_flag(query, "recursive", recursive)
        check_request_line("GET", path, [*query, ("waitIndex", str(2**63))])
        _check_timeout(timeout)
        return self._run(self._watch(normalize_key(key), path, query, index, timeout))

    async def _watch(
        self, key: str, path: str, query: Query, index: int | None, timeout: float | None = None
    ) -> EtcdResponse:
        exchange = self._exchange
        seconds = self._timeout if timeout is None else timeout
        while True:
            target = check_request_line(
                "GET", path, [*query, ("waitIndex", str(index))] if index else query
            )

            def attempt(endpoint: str, target: str = target) -> Any:
                return exchange.poll(endpoint, target, seconds, self._watch_timeout)

            raw, complete = await self._cluster.call(
                attempt,
                idempotent=True,
                what="watch",
                key=key,
                answer=lambda found: found[0],
                keyspace=True,
            )
            if raw.status != 200:
                await check_enabled(exchange, raw, target, self._timeout)
                raise error_for(raw)
            if complete and raw.body.strip():
                return decode(raw)
            started = int(raw.headers.get("x-etcd-index", "0") or 0)
            if started:
                index = max(index or 0, started + 1)
            self.log.debug("watch {key} renewed from {index}", key=key, index=index)

    def watcher(
        self,
        key: str,
        *,
        index: int | None = None,
        recursive: bool = False,
        retry_policy: Callable[[int], float] | None = None,
        idle_timeout: float = 60.0,
    ) -> Watcher:
        """
        Build a :class:`~txetcd2.watch.Watcher` that follows every change of a
        key, exactly once and in order, across reconnects and lost history.

        It does nothing until started; stop it before closing the client.

        :param key: the key or directory.
        :param index: the first index to report (default: changes after it started).
        :param recursive: watch everything below a directory.
        :param retry_policy: seconds before the ``n``-th retry (default:
            :func:`twisted.application.internet.backoffPolicy`).
        :param idle_timeout: seconds of silence after which the watch is renewed.
        :returns: the watcher, not started.
        """
        return Watcher(
            self,
            key,
            index=index,
            recursive=recursive,
            retry_policy=retry_policy,
            idle_timeout=idle_timeout,
        )

    # -- members, statistics and raw requests (txetcd2._api.admin) -----------------

    def members(self) -> Deferred[list[Member]]:
        """
        List the cluster's members.

        :returns: a Deferred firing with the list of :class:`Member`.
        """
        return self._run(_admin.members(self))

    def leader(self) -> Deferred[Member]:
        """
        Find the cluster's leader.

        :returns: a Deferred firing with the leader's :class:`Member`.
        :raises NoLeader: (in the Deferred) during an election or without quorum.
        """
        return self._run(_admin.leader(self))

    def add_member(self, peer_urls: Sequence[str] | str) -> Deferred[Member]:
        """
        Add a member (then start it with ``--initial-cluster-state existing``).

        :param peer_urls: the new member's peer URLs, e.g. ``["http://10.0.0.4:2380"]``.
        :returns: a Deferred firing with the new :class:`Member` (not started yet).
        :raises PeerURLExists: (in the Deferred) if a member already has one of the URLs.
        """
        return self._run(_admin.add_member(self, peer_urls))

    def remove_member(self, member_id: str | Member) -> Deferred[None]:
        """
        Remove a member.

        :param member_id: the member's hexadecimal id, or the :class:`Member`.
        :returns: a Deferred firing with ``None``.
        :raises MemberNotFound: (in the Deferred) for an unknown id.
        :raises MemberRemoved: (in the Deferred) for a member already removed.
        """
        return self._run(_admin.remove_member(self, member_id))

    def update_member(
        self, member_id: str | Member, peer_urls: Sequence[str] | str
    ) -> Deferred[None]:
        """
        Change a member's peer URLs.

        :param member_id: the member's hexadecimal id, or the :class:`Member`.
        :param peer_urls: its new peer URLs.
        :returns: a Deferred firing with ``None``.
        :raises MemberNotFound: (in the Deferred) for an unknown id.
        """
        return self._run(_admin.update_member(self, member_id, peer_urls))

    def version(self) -> Deferred[dict[str, str]]:
        """
        Ask the versions: ``{"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}``.

        :returns: a Deferred firing with the dict.
        """
        return self._run(_admin.version(self))

    def health(self) -> Deferred[bool]:
        """
        Ask whether the cluster is healthy (a 503 answer gives ``False``).

        :returns: a Deferred firing with ``True`` or ``False``.
        """
        return self._run(_admin.health(self))

    def machines(self) -> Deferred[list[str]]:
        """
        List every member's client URLs.

        :returns: a Deferred firing with the URLs.
        """
        return self._run(_admin.machines(self))

    def self_stats(self) -> Deferred[dict[str, Any]]:
        """
        Read ``/v2/stats/self`` of the member answering.

        :returns: a Deferred firing with the statistics.
        """
        return self._run(_admin.stats(self, "self"))

    def store_stats(self) -> Deferred[dict[str, Any]]:
        """
        Read ``/v2/stats/store``, the key-space operation counters.

        :returns: a Deferred firing with the statistics.
        """
        return self._run(_admin.stats(self, "store"))

    def leader_stats(self) -> Deferred[dict[str, Any]]:
        """
        Read ``/v2/stats/leader`` from the leader (found if a follower answers).

        :returns: a Deferred firing with the statistics.
        """
        return self._run(_admin.leader_stats(self))

    def raw(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | Sequence[tuple[str, object]] | None = None,
        body: Mapping[str, object] | bytes | str | None = None,
        *,
        json_body: object = None,
        content_type: str | None = None,
    ) -> Deferred[RawAnswer]:
        """
        Send any request through the cluster and fire with the answer, whatever its status.

        :param method: the HTTP method.
        :param path: the percent-encoded path, e.g. ``"/v2/keys/a"``.
        :param params: query parameters (booleans become ``true``/``false``).
        :param body: a mapping (sent as a form), or bytes/str sent as they are.
        :param json_body: a document to send as JSON instead.
        :param content_type: the body's type, overriding the default.
        :returns: a Deferred firing with a :class:`RawAnswer`.
        """
        coroutine = _admin.raw(
            self, method, path, params, body, json_body=json_body, content_type=content_type
        )
        return self._run(coroutine)

    def cluster_status(self) -> Deferred[ClusterStatus]:
        """
        Ask every member how it is; ``str()`` of the result is for people.

        :returns: a Deferred firing with a :class:`ClusterStatus`.
        """
        return self._run(cluster_status(self))

    # -- life cycle ----------------------------------------------------------

    def close(self) -> Deferred[None]:
        """
        Cancel every request in flight and close the pooled connections.

        :returns: a Deferred firing once the connections are closed.
        """
        self._closed = True
        self._sync.stop()
        for d in list(self._pending):
            d.cancel()
        if self._pool is None:
            return succeed(None)
        closing: Deferred[None] = self._pool.closeCachedConnections()
        return closing
