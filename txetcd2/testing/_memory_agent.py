"""
The in-memory HTTP agent of :class:`~txetcd2.testing.MemoryEtcd`: one treq
:class:`~treq.testing.RequestTraversalAgent` per member, chosen by the URL's
host and port, with every byte moved as soon as it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hyperlink import URL
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from twisted.web.resource import IResource
from zope.interface import implementer


class Pumps:
    """
    Moves bytes between the in-memory clients and servers until nothing
    moves any more; re-entrant calls only ask for one more round.
    """

    def __init__(self) -> None:
        self.agents: list[RequestTraversalAgent] = []
        self._flushing = False
        self._again = False

    def kick(self) -> None:
        """
        Deliver everything written so far (and what that causes).
        """
        if self._flushing:
            self._again = True
            return
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
        answer: Deferred[IResponse] = agent.request(method, uri, headers, bodyProducer)

        def moved(result: Any) -> Any:
            self._pumps.kick()
            return result

        answer.addBoth(moved)
        self._pumps.kick()
        return answer


def _netloc(uri: bytes) -> str:
    url = URL.from_text(uri.decode("ascii", "replace"))
    return f"{url.host.lower()}:{url.port}"
