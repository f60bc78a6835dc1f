"""
Finding the members: a periodic sync from ``/v2/members``, and DNS SRV records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IResolver
from twisted.internet.task import LoopingCall
from twisted.names import dns

from txetcd2._logs import PublicLogger
from txetcd2._session.members import parse_endpoints
from txetcd2._session.session import Request, Session
from txetcd2._wire.answers import RawResponse
from txetcd2._wire.errors import EtcdConnectionError, EtcdProtocolError

#: The SRV services etcd clients look up, TLS first, with their URL scheme.
SRV_SERVICES = (("_etcd-client-ssl._tcp", "https"), ("_etcd-client._tcp", "http"))


def client_urls(doc: Any) -> list[str]:
    """
    The client URLs of a member, or of every member in a list.

    :param doc: a ``/v2/members`` document (``{"members": [...]}``) or one member.
    :returns: the valid, normalized client URLs, in order, without duplicates.
    """
    members = doc.get("members") if isinstance(doc, dict) and "members" in doc else [doc]
    found: list[str] = []
    for member in members if isinstance(members, list) else []:
        urls = member.get("clientURLs") if isinstance(member, dict) else None
        for url in urls if isinstance(urls, list) else []:
            try:
                for endpoint in parse_endpoints([url]):
                    if endpoint not in found:
                        found.append(endpoint)
            except (TypeError, ValueError):
                continue
    return found


class MemberSync:
    """
    Keeps a cluster's member list up to date from ``/v2/members``.

    :param session: the session whose member list is kept up to date, and
        through which the requests go.
    :param interval: seconds between syncs; ``None``: no periodic sync.
    :param prefer_leader: also ask ``/v2/members/leader`` and send requests
        to the leader first.
    """

    log = PublicLogger(namespace="txetcd2.session")

    def __init__(
        self,
        session: Session,
        interval: float | None,
        prefer_leader: bool,
    ) -> None:
        self._session = session
        self._cluster = session.members
        self._clock = session.clock
        self._interval = interval
        self._prefer_leader = prefer_leader
        self._loop: LoopingCall | None = None
        self._current: Deferred[None] | None = None

    @property
    def running(self) -> bool:
        """
        Whether the periodic sync runs.
        """
        return self._loop is not None and self._loop.running

    def start(self) -> None:
        """
        Sync now, then every ``interval`` seconds (once, without an interval,
        when the leader is preferred; not at all otherwise).
        """
        if self._loop is not None or (self._interval is None and not self._prefer_leader):
            return
        if self._interval is None:
            self._tick()
            return
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=True).addErrback(
            lambda f: self.log.failure("etcd member sync stopped", f)
        )

    def stop(self) -> None:
        """
        Stop the periodic sync and cancel a sync in flight.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._current is not None and not self._current.called:
            self._current.cancel()

    def _tick(self) -> Deferred[None]:
        self._current = Deferred.fromCoroutine(self._sync_reporting())
        return self._current

    async def _sync_reporting(self) -> None:
        try:
            await self.sync()
        except CancelledError:
            return
        except Exception as e:
            # The sync is background work: report the failure and keep the
            # member list as it is; the next sync tries again.
            self.log.warn("etcd member sync failed: {error}", error=str(e))

    async def _get(self, target: str) -> RawResponse:
        session = self._session
        raw = await session.request(Request("GET", target, target, True), session.deadline(None))
        if raw.status != 200:
            raise EtcdProtocolError(raw.endpoint, raw.status, f"GET {target} failed", raw.body)
        return raw

    async def sync(self) -> None:
        """
        Fetch the member list once (and the leader, when preferred).

        :raises EtcdError: when the members could not be fetched.
        """
        members = client_urls((await self._get("/v2/members")).json())
        if members:
            self._cluster.replace(members)
        if self._prefer_leader:
            leader = client_urls((await self._get("/v2/members/leader")).json())
            if leader:
                self._cluster.pin(leader[0])


def nameservers(lines: Sequence[str]) -> list[tuple[str, int]]:
    """
    The IPv4 name servers of a ``resolv.conf``.

    :param lines: the file's lines.
    :returns: ``(address, 53)`` pairs; ``127.0.0.1`` when none is listed.
    """
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and ":" not in fields[1]:
            found.append((fields[1], dns.PORT))
    return found or [("127.0.0.1", dns.PORT)]


def default_resolver(reactor: Any, resolv_conf: str = "/etc/resolv.conf") -> IResolver:
    """
    A resolver over the name servers of ``resolv.conf``.

    Unlike :func:`twisted.names.client.createResolver`, it does not poll the
    file (which would leave a timed call behind).

    :param reactor: the reactor.
    :param resolv_conf: the file to read the name servers from.
    :returns: the resolver.
    """
    from twisted.names.client import Resolver

    try:
        with open(resolv_conf, encoding="ascii", errors="replace") as conf:
            lines = conf.readlines()
    except OSError:
        lines = []
    resolver: IResolver = Resolver(servers=nameservers(lines), reactor=reactor)
    return resolver


async def endpoints_from_srv(domain: str, resolver: IResolver) -> list[str]:
    """
    Find a cluster's client URLs from the SRV records of ``domain``.

    ``_etcd-client-ssl._tcp.<domain>`` gives ``https`` endpoints and
    ``_etcd-client._tcp.<domain>`` ``http`` ones, each ordered by priority
    then weight.

    :param domain: the DNS domain, like ``"example.com"``.
    :param resolver: the resolver.
    :returns: the endpoints.
    :raises EtcdConnectionError: when neither name has SRV records.
    """
    found: list[str] = []
    failures: list[str] = []
    for service, scheme in SRV_SERVICES:
        name = f"{service}.{domain}"
        try:
            # Twisted's annotation says RRHeader; the values are lists of them.
            found_records: Any = await resolver.lookupService(name, (1, 3, 11))
            answers: list[dns.RRHeader] = found_records[0]
        except Exception as e:
            failures.append(f"{name}: {type(e).__name__}")
            continue
        records: list[dns.Record_SRV] = []
        for answer in answers:
            if isinstance(answer.payload, dns.Record_SRV):
                records.append(answer.payload)
        records.sort(key=lambda r: (r.priority, -r.weight))
        for record in records:
            host = record.target.name.decode("ascii").rstrip(".")
            endpoint = f"{scheme}://{host}:{record.port}"
            if host and endpoint not in found:
                found.append(endpoint)
        if not records:
            failures.append(f"{name}: no SRV records")
    if not found:
        raise EtcdConnectionError(
            f"dns:{domain}",
            f"no etcd SRV records found ({'; '.join(failures)}); publish "
            f"_etcd-client._tcp.{domain} or pass the endpoints directly",
        )
    return found
