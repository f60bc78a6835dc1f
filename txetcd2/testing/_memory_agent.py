"""
The in-memory HTTP agent of :class:`~txetcd2.testing.MemoryEtcd`: one treq
:class:`~treq.testing.RequestTraversalAgent` per member, chosen by the URL's
host and port, with every byte moved as soon as it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from twisted.web.resource import IResource
from zope.interface import implementer


class Pumps:
    """
    Moves bytes between the in-memory clients and servers until nothing
    moves any more; re-entrant calls only ask for one more round.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.agents: list[RequestTraversalAgent] = []
        self._clock = clock
        self._flushing = False
        self._again = False
        self._soon: IDelayedCall | None = None

    def kick_soon(self) -> None:
        """
        Deliver what was written once the caller is done: in this flush's next
        round, or else at the clock's next turn (like a socket: a close is never
        seen by the other side before the closing call returns).
        """
        if self._flushing:
            self._again = True
        elif self._soon is None:
            self._soon = self._clock.callLater(0, self.kick)

    def kick(self) -> None:
        """
        Deliver everything written so far (and what that causes).
        """
        if self._flushing:
            self._again = True
            return
        if self._soon is not None:
            if self._soon.active():
                self._soon.cancel()
            self._soon = None
        self._flushing = True
        try:
            self._again = True
            while self._again:
                self._again = False
                for agent in self.agents:
                    agent.flush()
        finally:
            self._flushing = False

    def open_connections(self) -> list[object]:
        """
        The in-memory connections not closed on both ends.
        """
        # treq keeps its pumps private; there is no public way to list them.
        return [
            pump
            for agent in self.agents
            for pump in agent._pumps
            if not (pump.clientIO.disconnected and pump.serverIO.disconnected)
        ]


@implementer(IAgent)
class RoutingAgent:
    """
    Sends each request to the member whose ``host:port`` it names.

    :param pumps: the shared byte mover.
    :param refused: tells whether a member (by netloc) refuses connections.
    """

    def __init__(self, pumps: Pumps, refused: Callable[[str], bool]) -> None:
        self._pumps = pumps
        self._refused = refused
        self._agents: dict[str, RequestTraversalAgent] = {}

    def add(self, netloc: str, resource: IResource) -> None:
        """
        Answer requests for ``netloc`` with ``resource``.
        """
        agent = RequestTraversalAgent(resource)
        self._agents[netloc] = agent
        self._pumps.agents.append(agent)

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        netloc = _netloc(uri)
        agent = self._agents.get(netloc)
        if agent is None or self._refused(netloc):
            return fail(ConnectionRefusedError(netloc, "in-memory etcd member"))
        before = set(agent._pumps)
        answer: Deferred[IResponse] = agent.request(method, uri, headers, bodyProducer)
        for pump in set(agent._pumps) - before:
            # A client closing or aborting its side (a cancelled request, a stopped watch)
            # must reach the server at once, as it would over a socket.
            for name in ("loseConnection", "abortConnection"):
                setattr(pump.clientIO, name, self._then_kick(getattr(pump.clientIO, name)))

        def moved(result: Any) -> Any:
            self._pumps.kick()
            return result

        answer.addBoth(moved)
        self._pumps.kick()
        return answer

    def _then_kick(self, method: Callable[[], None]) -> Callable[[], None]:
        def call() -> None:
            method()
            self._pumps.kick_soon()

        return call


def _netloc(uri: bytes) -> str:
    scheme, _, rest = uri.partition(b"://")
    netloc = rest.split(b"/", 1)[0].split(b"@")[-1].decode("ascii", "replace").lower()
    if ":" not in netloc.rsplit("]", 1)[-1]:
        netloc += ":443" if scheme == b"https" else ":80"
    return netloc
