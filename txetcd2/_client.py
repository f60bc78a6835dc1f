"""
The client: the composition root that builds the pool, the agent, TLS, the
session and the APIs over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime, IResolver
from twisted.web.iweb import IAgent

from txetcd2._api import admin as _admin
from txetcd2._api.auth import AuthAPI
from txetcd2._api.keyspace import KeySpace
from txetcd2._api.status import ClusterStatus, cluster_status
from txetcd2._logs import PublicLogger
from txetcd2._reactor import default_reactor
from txetcd2._session.discovery import MemberSync, default_resolver, endpoints_from_srv
from txetcd2._session.members import Cluster, parse_endpoints
from txetcd2._session.retry import RetryPolicy, check_retry_policy, default_retry_policy
from txetcd2._session.session import Session
from txetcd2._transport.agent import etcd_http_client
from txetcd2._transport.default import default_agent
from txetcd2._transport.exchange import Exchange
from txetcd2._transport.tls import PEMSource, check_tls_options
from txetcd2._watch.source import SessionWatchSource
from txetcd2._watch.watcher import Watcher
from txetcd2._wire.admin_models import Member, RawAnswer
from txetcd2._wire.credentials import check_credentials
from txetcd2._wire.keys import check_duration, check_int, check_seconds, flag


class EtcdClient(KeySpace, Service):
    """
    A client for etcd's v2 API: the key space, watchers, members, statistics
    and auth, over one session (members, failover, checks, deadlines).

    Every method returns a :class:`~twisted.internet.defer.Deferred`;
    cancelling it fires it at once with ``CancelledError`` and aborts the
    request. Arguments are checked before any I/O: bad ones raise
    :class:`TypeError` or :class:`ValueError` at once.

    It is an :class:`~twisted.application.service.IService`
    (``startService`` calls :meth:`start`, ``stopService`` :meth:`close`) and
    an async context manager (``async with EtcdClient(...) as client:``
    closes it on exit). After :meth:`close`, every call and ``watcher()``
    raises :class:`~txetcd2.errors.ClientClosed`.

    :param endpoints: one member's URL, a comma-separated list, or a sequence
        of URLs, e.g. ``"http://127.0.0.1:2379"``.
    :param reactor: the reactor (default: the global one).
    :param timeout: the deadline of a whole call in seconds, all members and
        back-offs included (not the wait for a watch's event); each call may
        override it with ``timeout=``.
    :param agent: the HTTP agent (default: the client's own pool of
        keep-alive connections, or Twisted's :class:`Agent` when
        ``httptools`` is not installed).
    :param pool_size: how many connections to keep per member (the pool's
        cap for ordinary requests; watches are not counted).
    :param pipeline_depth: how many short reads (gets without ``wait``,
        ``quorum`` or ``recursive``) may be in flight on one connection,
        once a member has ``pool_size // pipeline_depth`` connections
        (default: 16; ``1`` turns pipelining off). Above 1, the client's own
        agent pool only (Twisted's ``Agent``, used without ``httptools``,
        never pipelines).
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
    :param proxy: an HTTP proxy to reach the members through
        (``http://[user:password@]host:port``; ``https://`` members through
        ``CONNECT``, with TLS verified end to end), or ``"env"`` to follow
        the ``http_proxy``/``https_proxy``/``no_proxy`` variables.
    """

    log = PublicLogger(namespace="txetcd2.client")

    def __init__(
        self,
        endpoints: str | Sequence[str] = "http://127.0.0.1:2379",
        *,
        reactor: Any = None,
        timeout: float = 5.0,
        agent: IAgent | None = None,
        pool_size: int = 64,
        pipeline_depth: int | None = None,
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
        proxy: str | None = None,
    ) -> None:
        if reactor is None:
            reactor = default_reactor()
        seconds = check_duration(timeout, "timeout")
        cluster = Cluster(parse_endpoints(endpoints))
        retries = check_int(max_retries, "max_retries", 0)
        policy = (
            default_retry_policy() if retry_policy is None else check_retry_policy(retry_policy)
        )
        check_seconds(sync_interval, "sync_interval")
        credentials = check_credentials(username, password, cluster.endpoints, allow_insecure_auth)
        tls = check_tls_options(agent, ca, cert, key, passphrase, verify)
        self._close_pool: Callable[[], Deferred[None]] | None = None
        depth = None if pipeline_depth is None else check_int(pipeline_depth, "pipeline_depth", 1)
        if agent is None:
            size = check_int(pool_size, "pool_size", 1)
            agent, self._close_pool = default_agent(
                reactor, tls, seconds, size, proxy=proxy, pipeline_depth=depth
            )
        elif proxy is not None or depth is not None:
            option = "proxy=" if proxy is not None else "pipeline_depth="
            raise ValueError(f"{option} configures the client's own agent; drop it with agent=")
        exchange = Exchange(etcd_http_client(agent), reactor)
        if credentials is not None:
            exchange.auth_header = credentials.header()
        session = Session(
            cluster, exchange, reactor, timeout=seconds, max_retries=retries, retry_policy=policy
        )
        KeySpace.__init__(self, session, watch_timeout)
        self.auth = AuthAPI(session)
        self._sync = MemberSync(
            session, sync_interval, flag(prefer_leader, "prefer_leader") == "true"
        )
        self._watch_source = SessionWatchSource(session, self)
        self._closed: Deferred[None] | None = None

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

        :raises ClientClosed: after :meth:`close`.
        """
        self._session.check_open()
        self._sync.start()

    def startService(self) -> None:
        """
        :class:`~twisted.application.service.IService`'s start: :meth:`start`.
        """
        self._session.check_open()
        Service.startService(self)
        self.start()

    def stopService(self) -> Deferred[None]:
        """
        :class:`~twisted.application.service.IService`'s stop: :meth:`close`.

        :returns: see :meth:`close`.
        """
        Service.stopService(self)
        return self.close()

    async def __aenter__(self) -> EtcdClient:
        self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        closed = " closed" if self._session.closed else ""
        return f"<EtcdClient {','.join(self._session.members.endpoints)}{closed}>"

    @property
    def clock(self) -> IReactorTime:
        """
        The reactor (or test ``Clock``) the client schedules its work on; the
        recipes and other helpers built on a client use it too.
        """
        return self._session.clock

    @property
    def endpoints(self) -> list[str]:
        """
        The members' base URLs, as the client knows them.
        """
        return list(self._session.members.endpoints)

    # -- watching ------------------------------------------------------------

    def watcher(
        self,
        key: str,
        *,
        index: int | None = None,
        recursive: bool = False,
        retry_policy: Callable[[int], float] | None = None,
        idle_timeout: float = 60.0,
        probe_interval: float | None = 5.0,
    ) -> Watcher:
        """
        Build a :class:`~txetcd2.watch.Watcher` that follows every change of a
        key, exactly once and in order, across reconnects and lost history.

        It does nothing until started; :meth:`close` stops it.

        :param key: the key or directory.
        :param index: the first index to report (default: changes after it started).
        :param recursive: watch everything below a directory.
        :param retry_policy: seconds before the ``n``-th retry (default:
            :func:`twisted.application.internet.backoffPolicy`).
        :param idle_timeout: seconds of silence after which the watch is renewed.
        :param probe_interval: seconds of a quiet stream after which a probe
            checks that nothing was missed (``None``: no probe).
        :returns: the watcher, not started.
        :raises ClientClosed: after :meth:`close`.
        """
        self._session.check_open()
        return Watcher(
            self._watch_source,
            key,
            index=index,
            recursive=recursive,
            retry_policy=retry_policy,
            idle_timeout=idle_timeout,
            probe_interval=probe_interval,
        )

    # -- members, statistics and raw requests (txetcd2._api.admin) ---------

    def members(self) -> Deferred[list[Member]]:
        """
        List the cluster's members.

        :returns: a Deferred firing with the list of :class:`Member`.
        """
        return self._session.run(_admin.members(self._session))

    def leader(self) -> Deferred[Member]:
        """
        Find the cluster's leader.

        :returns: a Deferred firing with the leader's :class:`Member`.
        :raises NoLeader: (in the Deferred) during an election or without quorum.
        """
        return self._session.run(_admin.leader(self._session))

    def add_member(self, peer_urls: Sequence[str] | str) -> Deferred[Member]:
        """
        Add a member (then start it with ``--initial-cluster-state existing``).

        :param peer_urls: the new member's peer URLs, e.g. ``["http://10.0.0.4:2380"]``.
        :returns: a Deferred firing with the new :class:`Member` (not started yet).
        :raises PeerURLExists: (in the Deferred) if a member already has one of the URLs.
        """
        return self._session.run(_admin.add_member(self._session, peer_urls))

    def remove_member(self, member_id: str | Member) -> Deferred[None]:
        """
        Remove a member.

        :param member_id: the member's hexadecimal id, or the :class:`Member`.
        :returns: a Deferred firing with ``None``.
        :raises MemberNotFound: (in the Deferred) for an unknown id.
        :raises MemberRemoved: (in the Deferred) for a member already removed.
        """
        return self._session.run(_admin.remove_member(self._session, member_id))

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
        return self._session.run(_admin.update_member(self._session, member_id, peer_urls))

    def version(self) -> Deferred[dict[str, str]]:
        """
        Ask the versions: ``{"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}``.

        :returns: a Deferred firing with the dict.
        """
        return self._session.run(_admin.version(self._session))

    def health(self) -> Deferred[bool]:
        """
        Ask whether the cluster is healthy (a 503 answer gives ``False``).

        :returns: a Deferred firing with ``True`` or ``False``.
        """
        return self._session.run(_admin.health(self._session))

    def machines(self) -> Deferred[list[str]]:
        """
        List every member's client URLs.

        :returns: a Deferred firing with the URLs.
        """
        return self._session.run(_admin.machines(self._session))

    def self_stats(self) -> Deferred[dict[str, Any]]:
        """
        Read ``/v2/stats/self`` of the member answering.

        :returns: a Deferred firing with the statistics.
        """
        return self._session.run(_admin.stats(self._session, "self"))

    def store_stats(self) -> Deferred[dict[str, Any]]:
        """
        Read ``/v2/stats/store``, the key-space operation counters.

        :returns: a Deferred firing with the statistics.
        """
        return self._session.run(_admin.stats(self._session, "store"))

    def leader_stats(self) -> Deferred[dict[str, Any]]:
        """
        Read ``/v2/stats/leader`` from the leader (found if a follower answers).

        :returns: a Deferred firing with the statistics.
        """
        return self._session.run(_admin.leader_stats(self._session))

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
            self._session,
            method,
            path,
            params,
            body,
            json_body=json_body,
            content_type=content_type,
        )
        return self._session.run(coroutine)

    def cluster_status(self) -> Deferred[ClusterStatus]:
        """
        Ask every member how it is; ``str()`` of the result is for people.

        :returns: a Deferred firing with a :class:`ClusterStatus`.
        """
        return self._session.run(cluster_status(self._session))

    # -- life cycle ----------------------------------------------------------

    def close(self) -> Deferred[None]:
        """
        Close the client: cancel every call in flight, stop every watcher and
        hub built from it, stop the member sync and close the pooled
        connections. Calls and ``watcher()`` afterwards raise
        :class:`~txetcd2.errors.ClientClosed`.

        :returns: a Deferred firing once the watchers have stopped and the
            connections are closed (the same moment if called again).
        """
        if self._closed is None:
            self._sync.stop()
            self._closed = Deferred.fromCoroutine(self._close())
        return self._session.close().addCallback(lambda _: self._closed)

    async def _close(self) -> None:
        await self._session.close()
        if self._close_pool is not None:
            await self._close_pool()
