"""
A long-poll's ``X-Etcd-Index`` is the index when etcd accepted it: the
session must not take it for a stale member's answer (regression found by the
recipes after the session layer landed).
"""

from __future__ import annotations

from tests._recipes_case import RecipeTestCase


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
        self.etcd.set("/x", "1")
        self.settle()
        event = self.successResultOf(watching)
        self.assertEqual((event.action, event.node.value), ("set", "1"))
        self.assertLess(event.etcd_index, event.index)

    def test_reads_still_judged(self) -> None:
        """A plain read answered with an older index than already seen is still refused."""
        client = self.client()
        self.result(client.set("/x", "0"))
        self.result(client.set("/x", "1"))
        self.etcd.index -= 1  # the member answers with an index below what was seen
        failure = self.failureResultOf(client.get("/x"))
        self.assertIn("stale", str(failure.value))
