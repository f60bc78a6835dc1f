"""
A cluster status a person can read: each member reachable or not, leader or
not, its version, and the cluster's health.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred, gatherResults

from txetcd2._api.admin import health, leader, members, send
from txetcd2._session.session import Session
from txetcd2._wire.admin_models import Member
from txetcd2._wire.errors import EtcdError, NoLeader


@attrs.frozen
class MemberStatus:
    """
    What one member says about itself.

    :ivar member: the member, as the cluster lists it.
    :ivar reachable: whether its client URL answered.
    :ivar leader: whether the cluster's leader is this member.
    :ivar state: its raft state from ``/v2/stats/self`` (``"StateLeader"``,
        ``"StateFollower"``, ...), when it answered.
    :ivar version: its etcd version, when it answered.
    :ivar error: why it could not be reached, or ``None``.
    """

    member: Member
    reachable: bool
    leader: bool = False
    state: str | None = None
    version: str | None = None
    error: str | None = None

    def format(self) -> str:
        """
        Describe the member in one line.

        :returns: the line.
        """
        name = self.member.name or "(not started)"
        url = self.member.client_urls[0] if self.member.client_urls else "-"
        if self.reachable:
            role = "LEADER" if self.leader else _role(self.state)
            detail = f"up    {role:<9} etcd {self.version or '?'}"
        else:
            role = "LEADER" if self.leader else "-"
            detail = f"DOWN  {role:<9} {self.error or 'unreachable'}"
        return f"{name:<14} {self.member.id:<16}  {url:<28} {detail}"


def _role(state: str | None) -> str:
    if not state:
        return "?"
    return state.removeprefix("State").lower()


@attrs.frozen
class ClusterStatus:
    """
    The state of a whole cluster, as a person wants to see it.

    :ivar members: each member's status, in the cluster's order.
    :ivar healthy: what ``/health`` said (``False`` when no member answered it).
    :ivar leader: the leader, or ``None`` when there is none.
    """

    members: tuple[MemberStatus, ...]
    healthy: bool
    leader: Member | None = None

    @property
    def reachable(self) -> int:
        """
        How many members answered.
        """
        return sum(1 for m in self.members if m.reachable)

    def format(self) -> str:
        """
        Describe the cluster in a few lines: a summary, then one line per member.

        :returns: the text.
        """
        health = "healthy" if self.healthy else "UNHEALTHY"
        if self.leader is not None:
            lead = f"leader {self.leader.name or self.leader.id}"
        else:
            lead = "no leader"
        lines = [
            f"etcd cluster: {health}, {lead}, "
            f"{self.reachable} of {len(self.members)} members reachable"
        ]
        lines.extend("  " + m.format() for m in self.members)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


async def _probe(session: Session, member: Member, current: Member | None) -> MemberStatus:
    is_leader = current is not None and current.id == member.id
    if not member.client_urls:
        return MemberStatus(member, False, is_leader, error="not started (no client URL)")
    endpoint = member.client_urls[0]
    try:
        version = await send(
            session,
            "GET",
            "/version",
            idempotent=True,
            what="version",
            only=[endpoint],
            max_retries=0,
        )
        stats = await send(
            session,
            "GET",
            "/v2/stats/self",
            idempotent=True,
            what="self stats",
            only=[endpoint],
            max_retries=0,
        )
    except EtcdError as e:
        return MemberStatus(member, False, is_leader, error=str(e))
    return MemberStatus(
        member,
        True,
        is_leader,
        state=_field(stats.body, "state"),
        version=_field(version.body, "etcdserver"),
    )


def _field(body: bytes, name: str) -> str | None:
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return None
    value = doc.get(name) if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


async def cluster_status(session: Session) -> ClusterStatus:
    """
    Ask every member of the cluster how it is.

    The member list and the leader come from the cluster (through the
    session's failover); then every member is asked directly, at once.

    :param session: the session.
    :returns: the status.
    :raises EtcdError: when the member list cannot be read at all.
    """
    listed = await members(session)
    try:
        found: Member | None = await leader(session)
    except NoLeader:
        found = None
    probes: list[Deferred[MemberStatus]] = [
        Deferred.fromCoroutine(_probe(session, member, found)) for member in listed
    ]
    statuses = await gatherResults(probes, consumeErrors=True)
    try:
        healthy = await health(session)
    except EtcdError:
        healthy = False
    return ClusterStatus(tuple(statuses), healthy, found)
