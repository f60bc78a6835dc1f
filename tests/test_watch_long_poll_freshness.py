"""
A long-poll's ``X-Etcd-Index`` is the index when etcd accepted it: the
session must not take it for a stale member's answer (regression found by the
recipes after the session layer landed).
"""

from __future__ import annotations

import json

from treq.testing import RequestTraversalAgent
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests._etcd_resource import EtcdResource
from tests._recipes_case import RecipeTestCase
from txetcd2 import EtcdClient


class LongPollFreshnessTests(RecipeTestCase):
    """
    ``EtcdClient.watch`` delivers an event even when other calls saw newer indexes meanwhile.
    """

    def test_event_after_newer_answers(self) -> None:
        """A watch answered after writes with higher indexes fires with its event."""
        client = self.client()
        self.result(client.set("/x", "0"))
        watching = client.watch("/x")
        self.settle()
        for i in range(5):
            self.result(client.set("/y", str(i)))
        self.set("/x", "1")
        self.settle()
        event = self.successResultOf(watching)
        self.assertEqual((event.action, event.node.value), ("set", "1"))
        self.assertLess(event.etcd_index, event.index)


class StaleReadTests(SynchronousTestCase):
    """
    Plain reads are still judged (a stale member's answer: a canned answer of the private
    resource, since :class:`~txetcd2.testing.MemoryEtcd` has no stale members).
    """

    def test_reads_still_judged(self) -> None:
        """A plain read answered with an older index than already seen is still refused."""
        clock = Clock()
        etcd = EtcdResource()
        agent = RequestTraversalAgent(etcd)
        client = EtcdClient("http://h1:2379", reactor=clock, agent=agent, max_retries=0)
        etcd.set("/x", "0")
        etcd.set("/x", "1")
        self.assertEqual(self.successResultOf(client.get_value("/x")), "1")
        old = {"action": "get", "node": {"key": "/x", "value": "0", "modifiedIndex": 1}}
        etcd.raw.append(
            (
                200,
                {"content-type": "application/json", "x-etcd-index": "1"},
                json.dumps(old).encode(),
            )
        )
        failure = self.failureResultOf(client.get("/x"))
        self.assertIn("stale", str(failure.value))
        closed = client.close()
        agent.flush()
        clock.advance(0)
        self.successResultOf(closed)
        self.assertEqual(clock.getDelayedCalls(), [])
        pumps = agent._pumps  # treq keeps its pumps private
        self.assertEqual(
            [p for p in pumps if not (p.clientIO.disconnected and p.serverIO.disconnected)], []
        )
