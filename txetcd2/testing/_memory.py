"""
:class:`MemoryEtcd`: an in-memory etcd v2 cluster for unit tests.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.web.server import Request

from txetcd2._client import EtcdClient
from txetcd2.testing._memory_agent import Pumps, RoutingAgent
from txetcd2.testing._memory_store import HISTORY_SIZE, Store, Watch
from txetcd2.testing._memory_web import MemberResource

#: The wall-clock time (2026-01-01T00:00:00Z) a fresh :class:`Clock`'s 0 stands for.
DEFAULT_EPOCH = 1767225600.0

_START = "2026-01-01T00:00:00Z"


@attrs.frozen
class MemoryRequest:
    """
    A request a member received.

    :ivar member: the member's URL.
    :ivar method: ``"GET"``, ``"PUT"``...
    :ivar path: the decoded path, e.g. ``"/v2/keys/a b"``.
    :ivar query: the query's parameters (first value of each).
    """

    member: str
    method: str
    path: str
    query: dict[str, str]

    @property
    def is_watch(self) -> bool:
        """
        Whether it is a watch (``wait=true``).
        """
        return self.query.get("wait") == "true"


class MemoryMember:
    """
    One member of a :class:`MemoryEtcd`: its URL, its identity and how it
    answers (:attr:`state`).

    :ivar url: its client URL, e.g. ``"http://member1.memory-etcd:2379"``.
    :ivar name: its name (``member1``...).
    :ivar id: its member ID (16 hex digits).
    :ivar state: ``"answering"`` (normal), ``"silent"`` (accepts, sends
        200 headers, then nothing), ``"unanswering"`` (accepts, never
        answers: a paused process), ``"refusing"`` (connections refused: a
        dead process), ``"failing"`` (answers every request with
        :attr:`failure_status` and etcd's ``errorCode 300``) or
        ``"no-quorum"`` (see :meth:`lose_quorum`).
    """

    def __init__(self, etcd: MemoryEtcd, number: int) -> None:
        self._etcd = etcd
        self.name = f"member{number}"
        self.url = f"http://{self.name}.memory-etcd:2379"
        self.peer_url = f"http://{self.name}.memory-etcd:2380"
        self.id = f"{0x8E9E05C52164694D + number:016x}"
        self.state = "answering"
        self.failure_status = 500
        self._requests: set[Request] = set()
        self._watches: set[Request] = set()

    def __repr__(self) -> str:
        return f"<MemoryMember {self.name} {self.url} {self.state}>"

    def silence(self) -> None:
        """
        Accept requests, send headers, then nothing (open watches go quiet too).
        """
        self.state = "silent"

    def stop_answering(self) -> None:
        """
        Accept connections and never answer (open watches go quiet too).
        """
        self.state = "unanswering"

    def refuse(self) -> None:
        """
        Drop every open connection and refuse new ones, like a killed member.
        """
        self.state = "refusing"
        self.drop()

    def fail(self, status: int = 500) -> None:
        """
        Answer every request with ``status`` and etcd's ``errorCode 300``.
        """
        if not 500 <= status <= 599:
            raise ValueError(f"status must be a 5xx HTTP status, not {status!r}")
        self.state = "failing"
        self.failure_status = status

    def lose_quorum(self) -> None:
        """
        Behave like a member cut off from the others: plain reads and watches
        answer (history included) but no new event reaches its watches; writes
        and quorum reads get etcd's ``500 errorCode 300 "request timed out"``
        after 7 s on the clock; ``/health`` and ``/v2/members/leader`` answer 503.
        """
        self.state = "no-quorum"

    def end_streams(self) -> None:
        """
        End every open watch answer on this member cleanly (a complete, empty
        or partial body), as older etcd servers did with idle watches.
        """
        for request in list(self._watches):
            if not request.finished:
                request.finish()
        self._etcd.kick()

    def truncate_streams(self, partial: bytes = b"") -> None:
        """
        Send ``partial`` (e.g. half an event) on every open watch answer, then
        drop its connection without ending the body: a member shutting down.
        """
        for request in list(self._watches):
            if partial:
                request.write(partial)
            transport = request.channel.transport if request.channel else None
            if transport is not None:
                getattr(transport, "abortConnection", transport.loseConnection)()
        self._etcd.kick()

    def watching(self, request: Request) -> None:
        """
        Remember an open watch answer (for :meth:`end_streams`, :meth:`truncate_streams`).
        """
        self._watches.add(request)
        request.notifyFinish().addBoth(lambda _: self._watches.discard(request))

    @property
    def watches(self) -> int:
        """
        How many watch answers are open on this member.
        """
        return len(self._watches)

    def restore(self) -> None:
        """
        Answer normally again.
        """
        self.state = "answering"

    def drop(self) -> None:
        """
        Abort every connection with a request pending on this member.
        """
        for request in list(self._requests):
            transport = request.channel.transport if request.channel else None
            if transport is not None:
                getattr(transport, "abortConnection", transport.loseConnection)()
        self._etcd.kick()

    def track(self, request: Request) -> None:
        """
        Remember ``request`` until it ends (for :meth:`drop`).
        """
        self._requests.add(request)
        request.notifyFinish().addBoth(lambda _: self._requests.discard(request))

    @property
    def pending(self) -> int:
        """
        How many requests are still open on this member.
        """
        return len(self._requests)

    def doc(self) -> dict[str, Any]:
        """
        Its ``/v2/members`` entry.
        """
        return {
            "id": self.id,
            "name": self.name,
            "peerURLs": [self.peer_url],
            "clientURLs": [self.url],
        }

    def health(self) -> tuple[int, dict[str, str]]:
        """
        Its ``/health`` answer (503 without quorum).
        """
        if self.state == "no-quorum":
            return 503, {"health": "false"}
        return 200, {"health": "true"}

    def leader_doc(self) -> tuple[int, dict[str, Any]]:
        """
        Its ``/v2/members/leader`` answer (503 without quorum).
        """
        if self.state == "no-quorum":
            return 503, {"message": "During election"}
        return 200, self._etcd.leader.doc()

    def self_stats(self) -> dict[str, Any]:
        """
        Its ``/v2/stats/self`` document.
        """
        leader = self._etcd.leader
        return {
            "name": self.name,
            "id": self.id,
            "state": "StateLeader" if leader is self else "StateFollower",
            "startTime": _START,
            "leaderInfo": {"leader": leader.id, "uptime": "1h0m0s", "startTime": _START},
            "recvAppendRequestCnt": 0,
            "sendAppendRequestCnt": 0,
        }

    def leader_stats(self) -> tuple[int, dict[str, Any]]:
        """
        Its ``/v2/stats/leader`` answer (403 on a follower, like etcd).
        """
        if self._etcd.leader is not self:
            return 403, {"message": "not current leader"}
        followers = {
            m.id: {
                "latency": dict.fromkeys(("current", "average", "minimum", "maximum"), 0.001),
                "counts": {"fail": 0, "success": self._etcd.raft_index},
            }
            for m in self._etcd.members
            if m is not self
        }
        return 200, {"leader": self.id, "followers": followers}


class MemoryEtcd:
    """
    An in-memory etcd v2 cluster, driven by a clock: a fast, deterministic
    stand-in for etcd in unit tests, reached with no network.

    Get a client with :meth:`client`; move time with ``etcd.clock.advance``;
    break members with :attr:`members` (:meth:`MemoryMember.silence`,
    :meth:`~MemoryMember.stop_answering`, :meth:`~MemoryMember.refuse`,
    :meth:`~MemoryMember.fail`, :meth:`~MemoryMember.lose_quorum`,
    :meth:`~MemoryMember.end_streams`, :meth:`~MemoryMember.truncate_streams`,
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
    ) -> None:
        if isinstance(members, bool) or not isinstance(members, int):
            raise TypeError(f"members must be an int, not {type(members).__name__}")
        if not 1 <= members <= 9:
            raise ValueError(f"members must be between 1 and 9, not {members!r}")
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive int, not {history!r}")
        self.clock: Any = Clock() if clock is None else clock
        if epoch is None:
            epoch = 0.0 if self.clock.seconds() > 1e9 else DEFAULT_EPOCH
        self.enable_v2 = enable_v2
        self.version = version
        self.cluster_id = "cdf818194e3a8c32"
        self.raft_term = 2
        self.raft_index = 4
        self.store = Store(self.clock, epoch, history)
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
        return self.store.watch_count

    @property
    def watches(self) -> list[Watch]:
        """
        The registered watches (``key``, ``recursive``, ``stream``, ``since``), a copy.
        """
        return self.store.watches

    def close(self) -> None:
        """
        Drop every open connection and cancel the expiry timer on the clock.
        """
        for member in self.members:
            member.drop()
        self.store.close()
        self.kick()

    def record(self, member: str, method: str, path: str, query: dict[str, str]) -> None:
        """
        Log a received request in :attr:`requests`.
        """
        self.requests.append(MemoryRequest(member, method, path, query))

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
