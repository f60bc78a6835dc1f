"""
The members of a :class:`~txetcd2.testing.MemoryEtcd`: how each one answers (or fails to), and
the documents only a member knows (its stats, its health).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.web.server import Request

if TYPE_CHECKING:
    from txetcd2.testing._memory import MemoryEtcd

_START = "2026-01-01T00:00:00Z"


@attrs.frozen
class MemoryRequest:
    """
    A request a member received.

    :ivar member: the member's URL.
    :ivar method: ``"GET"``, ``"PUT"``...
    :ivar path: the decoded path, e.g. ``"/v2/keys/a b"``.
    :ivar query: the query's parameters (first value of each).
    :ivar form: the form fields of a ``PUT`` or ``POST`` body (first value of
        each), e.g. ``{"value": "1", "ttl": "30"}``; empty for other requests.
    """

    member: str
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str] = attrs.field(factory=dict)

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
        dead process), ``"failing"`` (answers every request, or those
        :meth:`fail` selects, with :attr:`failure_status` and etcd's
        ``errorCode 300``)
        or ``"no-quorum"`` (see :meth:`lose_quorum`).
    :ivar failure_status: the HTTP status of a ``"failing"`` member's answers.

    Besides its state, a member can lose the answers to its next writes
    (:meth:`lose_answers`) and the history of its next watches
    (:meth:`lose_history`); :meth:`restore` ends every fault.
    """

    def __init__(self, etcd: MemoryEtcd, number: int) -> None:
        self._etcd = etcd
        self.name = f"member{number}"
        self.url = f"http://{self.name}.memory-etcd:2379"
        self.peer_url = f"http://{self.name}.memory-etcd:2380"
        self.id = f"{0x8E9E05C52164694D + number:016x}"
        self.state = "answering"
        self.failure_status = 500
        self._fail_times: int | None = None
        self._fail_match: Callable[[MemoryRequest], bool] | None = None
        self._lost_answers: list[bool] = []
        self._lost_histories = 0
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

    def fail(
        self,
        status: int = 500,
        *,
        times: int | None = None,
        match: Callable[[MemoryRequest], bool] | None = None,
    ) -> None:
        """
        Answer requests with ``status`` and etcd's ``errorCode 300`` ("request
        timed out", as during an election); open watches go quiet meanwhile.

        :param status: a 5xx status.
        :param times: fail only this many requests, then answer normally
            again (a transient failure); ``None``: until :meth:`restore`.
        :param match: fail only the requests it returns true for (e.g.
            ``lambda r: r.method == "GET"``); the others are answered.
        :raises ValueError: for a status that is not 5xx or ``times`` below 1.
        """
        if not 500 <= status <= 599:
            raise ValueError(f"status must be a 5xx HTTP status, not {status!r}")
        if times is not None and (isinstance(times, bool) or times < 1):
            raise ValueError(f"times must be at least 1 (or None), not {times!r}")
        self.state = "failing"
        self.failure_status = status
        self._fail_times = times
        self._fail_match = match

    def fails(self, request: MemoryRequest) -> bool:
        """
        Whether to answer ``request`` with the failure of :meth:`fail` (counted).
        """
        if self.state != "failing":
            return False
        if self._fail_match is not None and not self._fail_match(request):
            return False
        if self._fail_times is not None:
            self._fail_times -= 1
            if self._fail_times == 0:
                self.restore()
        return True

    def lose_answers(self, times: int = 1, *, apply: bool = True) -> None:
        """
        Never answer the next ``times`` writes (``PUT``, ``POST``, ``DELETE``):
        each is applied (``apply=False``: dropped) and its connection stays
        open with no answer, as when a member commits a write and its link
        fails before the answer leaves. The client cannot tell the outcome.

        :raises ValueError: for ``times`` below 1.
        """
        if isinstance(times, bool) or times < 1:
            raise ValueError(f"times must be at least 1, not {times!r}")
        self._lost_answers += [apply] * times

    def lost_answer(self) -> bool | None:
        """
        Whether the write being answered now loses its answer: ``None``
        (answered), ``True`` (applied, not answered), ``False`` (dropped).
        """
        return self._lost_answers.pop(0) if self._lost_answers else None

    def lose_history(self, times: int = 1) -> None:
        """
        Answer the next ``times`` watches given a ``waitIndex`` with etcd's
        ``400 errorCode 401 EventIndexCleared``, as etcd does when more than
        its history's events passed since that index (a client lagging
        behind a busy cluster).

        :raises ValueError: for ``times`` below 1.
        """
        if isinstance(times, bool) or times < 1:
            raise ValueError(f"times must be at least 1, not {times!r}")
        self._lost_histories += times

    def history_lost(self) -> bool:
        """
        Whether the watch being answered now gets ``EventIndexCleared`` (counted).
        """
        if not self._lost_histories:
            return False
        self._lost_histories -= 1
        return True

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
        Answer normally again: end the state and every pending fault
        (:meth:`fail`, :meth:`lose_answers`, :meth:`lose_history`).
        """
        self.state = "answering"
        self._fail_times = None
        self._fail_match = None
        self._lost_answers = []
        self._lost_histories = 0

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
