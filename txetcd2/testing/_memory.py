"""
:class:`MemoryEtcd`: an in-memory etcd v2 cluster for unit tests.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.web.server import Request

from txetcd2._client import EtcdClient
from txetcd2.testing._memory_agent import Pumps, RoutingAgent
from txetcd2.testing._memory_member import MemoryMember, MemoryRequest
from txetcd2.testing._memory_store import HISTORY_SIZE, Store, Watch
from txetcd2.testing._memory_web import MemberResource

#: The wall-clock time (2026-01-01T00:00:00Z) a fresh :class:`Clock`'s 0 stands for.
DEFAULT_EPOCH = 1767225600.0


class MemoryEtcd:
    """
    An in-memory etcd v2 cluster, driven by a clock: a fast, deterministic
    stand-in for etcd in unit tests, reached with no network.

    Get a client with :meth:`client`; move time with ``etcd.clock.advance``;
    break members with :attr:`members` (:meth:`MemoryMember.silence`,
    :meth:`~MemoryMember.stop_answering`, :meth:`~MemoryMember.refuse`,
    :meth:`~MemoryMember.fail` (optionally ``times=`` and ``match=``: a
    transient failure of some requests), :meth:`~MemoryMember.lose_quorum`,
    :meth:`~MemoryMember.lose_answers` (writes applied or dropped, never
    answered: outcome unknown), :meth:`~MemoryMember.lose_history` (the next
    watches get ``EventIndexCleared``), :meth:`~MemoryMember.end_streams`,
    :meth:`~MemoryMember.truncate_streams`,
    :meth:`~MemoryMember.restore`); see what was asked in :attr:`requests`
    and which watches are registered in :attr:`watches`. The
    conformance suite (``tests/conformance``) runs the same scenarios against
    it and against real etcd 3.4 and 3.5.

    It answers what the client can ask: the whole key space (set, create,
    update, compare-and-swap/delete by value and index, directories,
    recursive and sorted listings, hidden ``_`` keys, in-order POST keys,
    TTLs expiring on the clock with ``expire`` events, ``refresh`` without
    an event, ``noValueOnSuccess``, ``quorum``), watches (long-polls,
    ``waitIndex``, ``stream=true`` including etcd's one-shot stream when
    ``waitIndex`` is still in history, recursive watches, the 1000-event
    history and ``401 EventIndexCleared``), etcd's error bodies, statuses and
    ``X-Etcd-Index``/``X-Raft-Index``/``X-Raft-Term``/``X-Etcd-Cluster-Id``
    headers, and ``/version``, ``/health``, ``/v2/members`` (list, leader,
    add, remove, update), ``/v2/machines`` and ``/v2/stats/{self,store,leader}``.

    Time and bytes: every request is answered before ``client.<call>()``
    returns; TTLs are one timer on the clock (:meth:`close` cancels it); a
    connection a client closes or aborts outside any request (a stopped
    watcher, a cancelled call) reaches the server at the clock's next turn,
    as over a socket: ``clock.advance(0)`` (or :meth:`kick`) delivers it.

    Where it differs from etcd on purpose:

    - TTLs expire exactly on time (etcd expires keys in its next sync, up to
      500 ms late); ``expiration`` is ``epoch + clock.seconds()``.
    - Unsorted listings keep creation order (etcd's order is random).
    - All members share one store: no stale reads, no leader elections, no
      write forwarding delays; member 1 is always the leader.
    - A stream reader is never dropped for being slow (etcd drops one more
      than about 100 events behind), and a watcher gets one event at most
      once (etcd may notify a recursive stream twice for one delete).
    - Paths are cleaned (``//``, ``.``, ``..``) instead of redirected with a
      301, and the 4096-byte request line limit is not modelled.
    - A member without quorum (:meth:`MemoryMember.lose_quorum`) times writes
      out after exactly 7 s and never applies them; its plain reads are never
      stale.
    - ``silence()`` sends bare 200 headers (no ``X-Etcd-*``) for every request.
    - Member changes (``POST``/``DELETE``/``PUT /v2/members``) only edit the
      list; the running members cannot be removed (409).
    - No auth (``/v2/auth/*`` answers 404), no TLS, no v3 API.

    :param clock: the clock driving TTLs (default: a fresh
        :class:`~twisted.internet.task.Clock`), also the clients' reactor.
    :param members: how many members answer as one cluster.
    :param enable_v2: ``False`` answers every ``/v2/*`` path with a plain
        404, like etcd 3.4/3.5 started without ``--enable-v2=true``.
    :param history: how many events ``waitIndex`` can reach back (etcd: 1000).
    :param epoch: the wall-clock time (POSIX seconds) at ``clock.seconds() == 0``;
        default 2026-01-01 for a fresh clock, 0 for a clock that reads real time.
    :param version: what ``/version`` reports as ``etcdserver``.
    :param index: the store index to start from (default 0), as in a
        long-lived cluster whose indexes are large.
    :ivar clock: the clock.
    :ivar members: the :class:`MemoryMember` list.
    :ivar requests: every request received, as :class:`MemoryRequest`, oldest first.
    """

    def __init__(
        self,
        clock: IReactorTime | None = None,
        *,
        members: int = 1,
        enable_v2: bool = True,
        history: int = HISTORY_SIZE,
        epoch: float | None = None,
        version: str = "3.4.23",
        index: int = 0,
    ) -> None:
        if isinstance(members, bool) or not isinstance(members, int):
            raise TypeError(f"members must be an int, not {type(members).__name__}")
        if not 1 <= members <= 9:
            raise ValueError(f"members must be between 1 and 9, not {members!r}")
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive int, not {history!r}")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**64:
            raise ValueError(f"index must be an int from 0 to 2**64 - 1, not {index!r}")
        self.clock: Any = Clock() if clock is None else clock
        if epoch is None:
            epoch = 0.0 if self.clock.seconds() > 1e9 else DEFAULT_EPOCH
        self.enable_v2 = enable_v2
        self.version = version
        self.cluster_id = "cdf818194e3a8c32"
        self.raft_term = 2
        self.raft_index = 4
        self.store = Store(self.clock, epoch, history)
        self.store.index = index
        self.requests: list[MemoryRequest] = []
        self._counts: dict[str, int] = {}
        self._added: list[dict[str, Any]] = []
        self._pumps = Pumps(self.clock)
        self.members = [MemoryMember(self, n + 1) for n in range(members)]
        self._agent = RoutingAgent(self._pumps, self._refused)
        for member in self.members:
            self._agent.add(member.url.split("://")[1], MemberResource(self, member))

    def __repr__(self) -> str:
        return f"<MemoryEtcd {len(self.members)} member(s), index {self.store.index}>"

    @property
    def urls(self) -> list[str]:
        """
        The members' client URLs.
        """
        return [m.url for m in self.members]

    @property
    def agent(self) -> RoutingAgent:
        """
        The in-memory :class:`~twisted.web.iweb.IAgent` reaching the members.
        """
        return self._agent

    @property
    def index(self) -> int:
        """
        The store index (``X-Etcd-Index``).
        """
        return self.store.index

    @property
    def leader(self) -> MemoryMember:
        """
        The leader (the first member).
        """
        return self.members[0]

    def client(self, **options: Any) -> EtcdClient:
        """
        A client on this cluster, with no network.

        :param options: any :class:`~txetcd2.EtcdClient` option but ``agent``;
            ``endpoints`` defaults to every member, ``reactor`` to :attr:`clock`.
        :returns: the client (close it when done).
        :raises TypeError: for ``agent``.
        """
        if "agent" in options:
            raise TypeError("MemoryEtcd.client() makes its own agent: do not pass agent=")
        options.setdefault("reactor", self.clock)
        endpoints = options.pop("endpoints", self.urls)
        return EtcdClient(endpoints, agent=self._agent, **options)

    def kick(self) -> None:
        """
        Deliver every byte written so far (the agent does it on each request).
        """
        self._pumps.kick()

    def open_connections(self) -> list[object]:
        """
        The in-memory connections still open (empty once every client closed).
        """
        self.kick()
        return self._pumps.open_connections()

    @property
    def watch_count(self) -> int:
        """
        How many watches are registered in the store.
        """
        return self.store.hub.watch_count

    @property
    def watches(self) -> list[Watch]:
        """
        The registered watches (``key``, ``recursive``, ``stream``, ``since``), a copy.
        """
        return self.store.hub.watches

    def close(self) -> None:
        """
        Drop every open connection and cancel the expiry timer on the clock.
        """
        for member in self.members:
            member.drop()
        self.store.close()
        self.kick()

    def record(
        self,
        member: str,
        method: str,
        path: str,
        query: dict[str, str],
        form: dict[str, str] | None = None,
    ) -> MemoryRequest:
        """
        Log a received request in :attr:`requests`.

        :returns: the logged request.
        """
        request = MemoryRequest(member, method, path, query, dict(form or {}))
        self.requests.append(request)
        return request

    def _refused(self, netloc: str) -> bool:
        return any(m.state == "refusing" for m in self.members if m.url.endswith("//" + netloc))

    # -- documents for the web layer ------------------------------------------------

    def count(self, method: bytes, quorum: bool) -> None:
        """
        Count a successful key request (writes and quorum reads go through raft).
        """
        name = {b"GET": "getsSuccess", b"HEAD": "getsSuccess"}.get(method, "setsSuccess")
        self._counts[name] = self._counts.get(name, 0) + 1
        if method not in (b"GET", b"HEAD") or quorum:
            self.raft_index += 1

    def version_doc(self) -> dict[str, str]:
        """
        The ``/version`` document.
        """
        major, minor, *_ = self.version.split(".")
        return {"etcdserver": self.version, "etcdcluster": f"{major}.{minor}.0"}

    def members_doc(self) -> list[dict[str, Any]]:
        """
        The ``/v2/members`` list.
        """
        return [m.doc() for m in self.members] + [dict(m) for m in self._added]

    def store_stats(self) -> dict[str, Any]:
        """
        The ``/v2/stats/store`` document.
        """
        names = ("getsSuccess", "getsFail", "setsSuccess", "setsFail", "expireCount")
        doc: dict[str, Any] = {n: self._counts.get(n, 0) for n in names}
        doc["watchers"] = self.watch_count
        return doc

    def add_member(self, request: Request) -> tuple[int, dict[str, Any]]:
        """
        ``POST /v2/members``: remember a new (never started) member.
        """
        if (request.getHeader("content-type") or "").split(";")[0] != "application/json":
            return 415, {"message": "Bad Content-Type"}
        try:
            urls = json.loads(request.content.read() if request.content else b"")["peerURLs"]
        except (ValueError, KeyError, TypeError):
            return 400, {"message": "invalid peerURLs"}
        known = {u for m in self.members_doc() for u in m["peerURLs"]}
        if known & set(urls):
            return 409, {"message": "etcdserver: Peer URLs already exists"}
        member = {"id": f"{0x1000 + len(self._added) + 1:016x}", "name": "", "peerURLs": urls}
        member["clientURLs"] = []
        self._added = [*self._added, member]
        return 201, member

    def change_member(self, request: Request, member_id: str) -> tuple[int, dict[str, Any]]:
        """
        ``DELETE``/``PUT /v2/members/<id>`` on a member added with ``POST``.
        """
        for member in self._added:
            if member["id"] == member_id:
                if request.method == b"DELETE":
                    self._added = [m for m in self._added if m is not member]
                    return 204, {}
                if request.method == b"PUT":
                    body = request.content.read() if request.content else b""
                    member["peerURLs"] = json.loads(body or b"{}").get("peerURLs", [])
                    return 204, {}
        if any(m.id == member_id for m in self.members):
            return 409, {"message": "membership change refused by the in-memory etcd"}
        return 404, {"message": f"No such member: {member_id}"}
