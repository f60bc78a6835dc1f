"""
Tests for failover across members: txetcd2._session.members, _retry, _freshness,
_redirect and _discovery, driven through EtcdClient with a recording agent
and a Clock.
"""

from __future__ import annotations

from typing import Any, cast

from OpenSSL.SSL import Error as TLSError
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IResolver
from twisted.internet.task import Clock
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived

from txetcd2 import (
    ClusterUnavailable,
    EtcdClient,
    EtcdClusterMismatch,
    EtcdConnectionError,
    EtcdOutcomeUnknown,
    EtcdProtocolError,
    EtcdStaleAnswer,
    EtcdTimeout,
    KeyNotFound,
    RaftInternal,
)
from txetcd2._session.discovery import client_urls, endpoints_from_srv, nameservers
from txetcd2._session.members import Cluster
from txetcd2.testing._fakes import FakeRequest, RecordingAgent, error_body, node_body

A, B, C = "http://a:1", "http://b:2", "http://c:3"
MEMBERS = f"{A},{B},{C}"


def policy() -> Any:
    """
    A back-off of 1, 2, 4, ... seconds, without jitter.
    """
    return backoffPolicy(initialDelay=1.0, factor=2.0, maxDelay=60.0, jitter=lambda: 0.0)


class Harness:
    """
    A client over a recording agent and a clock.
    """

    def __init__(self, endpoints: str = MEMBERS, **options: Any) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        options.setdefault("retry_policy", policy())
        self.client = EtcdClient(endpoints, reactor=self.clock, agent=self.agent, **options)

    def pop(self, netloc: str) -> FakeRequest:
        """
        The single pending request, which must go to ``netloc``.
        """
        request = self.agent.pop()
        assert request.netloc == netloc, f"request went to {request.netloc}, not {netloc}"
        return request

    def ok(self, netloc: str, index: int = 5, headers: dict[str, str] | None = None) -> None:
        """
        Answer the pending request with a value.
        """
        all_headers = {"x-etcd-index": str(index), "x-etcd-cluster-id": "cid", **(headers or {})}
        self.pop(netloc).respond(200, node_body("get", "/k", "v", index), all_headers)

    def idle(self) -> bool:
        """
        Whether nothing is pending: no request and no timed call.
        """
        return self.agent.pending() == [] and self.clock.getDelayedCalls() == []


class FailoverTests(SynchronousTestCase):
    """
    Which member a request goes to, and when.
    """

    def test_refused_moves_to_next_at_once(self) -> None:
        """A refused connection sends the same request to the next member without waiting."""
        h = Harness()
        d = h.client.get("k")
        h.pop(A).refuse()
        h.ok(B)
        self.assertEqual(self.successResultOf(d).node.value, "v")

    def test_pin_last_good_member(self) -> None:
        """After a member answered, the next request goes to it first."""
        h = Harness()
        h.client.get("k")
        h.pop(A).refuse()
        h.ok(B)
        d = h.client.get("k")
        h.ok(B)
        self.successResultOf(d)

    def test_backoff_only_after_full_sweep(self) -> None:
        """Every member is tried once, then the client waits the policy's delay."""
        h = Harness()
        d = h.client.get("k")
        h.pop(A).refuse()
        h.pop(B).refuse()
        h.pop(C).refuse()
        self.assertEqual(h.agent.pending(), [])
        self.assertEqual([c.getTime() for c in h.clock.getDelayedCalls()], [1.0])
        h.clock.advance(0.999)
        self.assertEqual(h.agent.pending(), [])
        h.clock.advance(0.001)
        h.pop(A).refuse()
        h.ok(B)
        self.successResultOf(d)

    def test_max_retries_then_cluster_unavailable(self) -> None:
        """After max_retries back-offs, ClusterUnavailable lists each endpoint's error."""
        h = Harness(max_retries=1)
        d = h.client.get("k")
        for _ in range(2):
            h.pop(A).refuse()
            h.pop(B).fail(DNSLookupError("no such host b"))
            h.pop(C).refuse()
            h.clock.advance(1.0)
        error = self.failureResultOf(d, ClusterUnavailable).value
        self.assertEqual([e for e, _ in error.errors], [A, B, C])
        self.assertIn("no such host b", str(error))
        self.assertIn(A, str(error))
        self.assertTrue(h.idle())

    def test_single_member_raises_its_error(self) -> None:
        """With one member, its own connection error is raised after the retries."""
        h = Harness(A, max_retries=2)
        d = h.client.get("k")
        h.pop(A).refuse()
        h.clock.advance(1.0)
        h.pop(A).refuse()
        h.clock.advance(2.0)
        h.pop(A).refuse()
        failure = self.failureResultOf(d, EtcdConnectionError)
        self.assertNotIsInstance(failure.value, ClusterUnavailable)
        self.assertTrue(h.idle())

    def test_max_retries_zero(self) -> None:
        """With max_retries=0 one sweep is made and no back-off is scheduled."""
        h = Harness(max_retries=0)
        d = h.client.get("k")
        for member in (A, B, C):
            h.pop(member).refuse()
        self.failureResultOf(d, ClusterUnavailable)
        self.assertTrue(h.idle())

    def test_raft_error_on_read_backs_off_then_next_member(self) -> None:
        """errorCode 300 on a read waits one back-off, then asks the next member."""
        h = Harness()
        d = h.client.get("k")
        h.pop(A).respond(500, error_body(300, "Raft Internal Error", "request timed out"))
        self.assertEqual(h.agent.pending(), [])
        h.clock.advance(1.0)
        h.ok(B)
        self.successResultOf(d)

    def test_plain_5xx_on_read_is_retried(self) -> None:
        """A 503 that is not an etcd document is retried elsewhere for a read."""
        h = Harness()
        d = h.client.get("k")
        h.pop(A).respond(503, b"busy", {"content-type": "text/plain"})
        h.clock.advance(1.0)
        h.ok(B)
        self.successResultOf(d)

    def test_leader_election_error_is_retried(self) -> None:
        """errorCode 301 (leader election) on a read is retried elsewhere."""
        h = Harness()
        d = h.client.get("k")
        h.pop(A).respond(500, error_body(301, "During Leader Election"))
        h.clock.advance(1.0)
        h.ok(B)
        self.successResultOf(d)

    def test_every_member_busy(self) -> None:
        """A read answered 300 by every member ends in ClusterUnavailable with the raft errors."""
        h = Harness(max_retries=2)
        d = h.client.get("k")
        h.pop(A).respond(500, error_body(300, "Raft Internal Error"))
        h.clock.advance(1.0)
        h.pop(B).respond(500, error_body(300, "Raft Internal Error"))
        h.clock.advance(2.0)
        h.pop(C).respond(500, error_body(300, "Raft Internal Error"))
        error = self.failureResultOf(d, ClusterUnavailable).value
        self.assertTrue(all(isinstance(e, RaftInternal) for _, e in error.errors))
        self.assertTrue(h.idle())

    def test_api_errors_are_answers(self) -> None:
        """A KeyNotFound answer is returned at once, without trying other members."""
        h = Harness()
        d = h.client.get("k")
        h.pop(A).respond(404, error_body(100, "Key not found", "/k", 7), {"x-etcd-index": "7"})
        self.failureResultOf(d, KeyNotFound)
        self.assertTrue(h.idle())

    def test_set_is_retried_after_lost_connection(self) -> None:
        """A plain set (idempotent) is resent elsewhere when the connection broke."""
        h = Harness()
        d = h.client.set("k", "v")
        h.pop(A).fail(ResponseNeverReceived([Failure(ConnectionResetError())]))
        h.ok(B)
        self.successResultOf(d)


class SafetyTests(SynchronousTestCase):
    """
    Non-idempotent requests are never sent twice when they may have arrived.
    """

    def test_append_refused_is_retried(self) -> None:
        """An append whose connection was refused is sent to the next member."""
        h = Harness()
        d = h.client.append("q", "v")
        h.pop(A).refuse()
        request = h.pop(B)
        self.assertEqual(request.method, "POST")
        request.respond(201, node_body("create", "/q/00000000000000000006", "v", 6))
        self.assertEqual(self.successResultOf(d).node.key, "/q/00000000000000000006")

    def test_append_tls_handshake_failure_is_retried(self) -> None:
        """A TLS handshake failure proves the request never left: it is retried."""
        h = Harness()
        d = h.client.append("q", "v")
        h.pop(A).fail(ResponseNeverReceived([Failure(TLSError("handshake failed"))]))
        h.pop(B).respond(201, node_body("create", "/q/6", "v", 6))
        self.successResultOf(d)

    def test_append_lost_connection_is_outcome_unknown(self) -> None:
        """An append whose connection broke after sending raises EtcdOutcomeUnknown."""
        h = Harness()
        d = h.client.append("q", "v")
        h.pop(A).fail(ResponseNeverReceived([Failure(ConnectionResetError())]))
        error = self.failureResultOf(d, EtcdOutcomeUnknown).value
        self.assertEqual((error.endpoint, error.method, error.key), (A, "POST", "/q"))
        self.assertTrue(h.idle())

    def test_create_raft_error_is_outcome_unknown(self) -> None:
        """A create answered 500/300 may be applied later: EtcdOutcomeUnknown, never resent."""
        h = Harness()
        d = h.client.create("k", "v")
        h.pop(A).respond(500, error_body(300, "Raft Internal Error", "request timed out"))
        error = self.failureResultOf(d, EtcdOutcomeUnknown).value
        self.assertIsInstance(error.error, RaftInternal)
        self.assertTrue(h.idle())

    def test_non_idempotent_methods(self) -> None:
        """create, append, CAS, CAD, delete, refresh and conditional set are never resent."""
        h = Harness()
        calls = [
            lambda: h.client.create("k", "v"),
            lambda: h.client.append("k", "v"),
            lambda: h.client.compare_and_swap("k", "v", prev_value="o"),
            lambda: h.client.compare_and_delete("k", prev_index=3),
            lambda: h.client.delete("k"),
            lambda: h.client.refresh("k", 10),
            lambda: h.client.update("k", "v"),
            lambda: h.client.set("k", "v", prev_exist=True),
        ]
        for call in calls:
            d = call()
            h.agent.pop().fail(ResponseNeverReceived([Failure(ConnectionResetError())]))
            self.failureResultOf(d, EtcdOutcomeUnknown)
            self.assertEqual(h.agent.pending(), [])

    def test_append_timeout_is_outcome_unknown_and_unpins(self) -> None:
        """An append that timed out is not resent, and the next request starts elsewhere."""
        h = Harness(timeout=2.0)
        d = h.client.append("q", "v")
        h.pop(A)
        h.clock.advance(2.0)
        error = self.failureResultOf(d, EtcdOutcomeUnknown).value
        self.assertIsInstance(error.error, EtcdTimeout)
        d = h.client.get("k")
        h.ok(B)
        self.successResultOf(d)
        self.assertTrue(h.idle())


class TimeoutTests(SynchronousTestCase):
    """
    Per-request timeouts detect paused members.
    """

    def test_paused_member_is_skipped(self) -> None:
        """A member that never answers is abandoned after its share of the call's deadline."""
        h = Harness(timeout=3.0)
        d = h.client.get("k")
        paused = h.pop(A)
        h.clock.advance(1.0)  # a third of the call's deadline: three members to try
        self.assertTrue(paused.cancelled)
        h.ok(B)
        self.successResultOf(d)
        self.assertTrue(h.idle())

    def test_per_request_timeout_override(self) -> None:
        """timeout= on a call overrides the client's default, and EtcdTimeout names both."""
        h = Harness(A, timeout=5.0, max_retries=0)
        d = h.client.get("k", timeout=0.5)
        h.pop(A)
        h.clock.advance(0.5)
        error = self.failureResultOf(d, EtcdTimeout).value
        self.assertEqual((error.endpoint, error.seconds), (A, 0.5))
        self.assertIn(A, str(error))
        self.assertIn("0.5s", str(error))

    def test_watch_timeout_override(self) -> None:
        """watch(timeout=) bounds the wait for the watch's headers."""
        h = Harness(A, max_retries=0)
        d = h.client.watch("k", timeout=1.5)
        h.pop(A)
        h.clock.advance(1.5)
        self.assertEqual(self.failureResultOf(d, EtcdTimeout).value.seconds, 1.5)

    def test_bad_timeouts(self) -> None:
        """A timeout that is not a positive number is refused before any I/O."""
        h = Harness()
        self.assertRaises(ValueError, h.client.get, "k", timeout=0)
        self.assertRaises(TypeError, h.client.set, "k", "v", timeout="1")
        self.assertRaises(ValueError, h.client.append, "k", "v", timeout=-1.0)
        self.assertEqual(h.agent.requests, [])

    def test_bad_options(self) -> None:
        """Bad retry options are refused at construction."""
        clock = Clock()
        agent = RecordingAgent(clock)
        self.assertRaises(ValueError, EtcdClient, A, reactor=clock, agent=agent, max_retries=-1)
        self.assertRaises(TypeError, EtcdClient, A, reactor=clock, agent=agent, retry_policy=3)
        self.assertRaises(ValueError, EtcdClient, A, reactor=clock, agent=agent, sync_interval=0)
        self.assertRaises(TypeError, EtcdClient, A, reactor=clock, agent=agent, prefer_leader=1)


class CancelTests(SynchronousTestCase):
    """
    Cancelling a call aborts it at once; late answers are ignored.
    """

    def test_cancel_then_deliver(self) -> None:
        """A cancelled request's late answer fires nothing and starts nothing."""
        h = Harness()
        d = h.client.get("k")
        request = h.pop(A)
        fired: list[object] = []
        d.addBoth(fired.append)
        d.cancel()
        self.assertTrue(request.cancelled)
        self.assertEqual(len(fired), 1)
        self.assertIsInstance(fired[0], Failure)
        request.respond(200, node_body("get", "/k", "v", 5))
        self.assertEqual(len(fired), 1)
        self.assertEqual(len(h.agent.requests), 1)
        self.assertTrue(h.idle())

    def test_cancel_while_reading_body(self) -> None:
        """Cancelling while the body arrives aborts the connection; the rest is ignored."""
        h = Harness()
        d = h.client.get("k")
        response = h.pop(A).respond(200, b'{"action":', finish=False)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(response.transport.aborted)
        response.write(b'"get"}')
        response.finish()
        h.clock.advance(0)
        self.assertEqual(len(h.agent.requests), 1)
        self.assertTrue(h.idle())

    def test_cancel_during_backoff(self) -> None:
        """Cancelling during a back-off removes the timed call; nothing is sent later."""
        h = Harness()
        d = h.client.get("k")
        for member in (A, B, C):
            h.pop(member).refuse()
        self.assertEqual(len(h.clock.getDelayedCalls()), 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(h.idle())
        h.clock.advance(100)
        self.assertEqual(len(h.agent.requests), 3)

    def test_close_cancels_in_flight(self) -> None:
        """close() cancels a request in flight and leaves no timed call behind."""
        h = Harness()
        d = h.client.get("k")
        request = h.pop(A)
        self.successResultOf(h.client.close())
        self.failureResultOf(d, CancelledError)
        request.respond(200, node_body("get", "/k", "v", 5))
        self.assertTrue(h.idle())


class ConsistencyTests(SynchronousTestCase):
    """
    Stale answers and foreign clusters are never used.
    """

    def test_stale_read_retried_elsewhere(self) -> None:
        """A read answered with an index older than an acknowledged write goes elsewhere."""
        h = Harness()
        d = h.client.set("k", "new")
        h.ok(A, index=10)
        self.successResultOf(d)
        d = h.client.get("k")
        h.ok(A, index=8)
        h.ok(B, index=10)
        self.assertEqual(self.successResultOf(d).etcd_index, 10)

    def test_stale_term_retried_elsewhere(self) -> None:
        """A read from a member in an older raft term is not used."""
        h = Harness()
        d = h.client.get("k")
        h.ok(A, index=5, headers={"x-raft-term": "4"})
        self.successResultOf(d)
        d = h.client.get("k")
        h.ok(A, index=6, headers={"x-raft-term": "3"})
        h.ok(B, index=6, headers={"x-raft-term": "4"})
        self.successResultOf(d)

    def test_stale_not_found_retried(self) -> None:
        """A KeyNotFound from a member that is behind is not believed."""
        h = Harness()
        d = h.client.set("k", "v")
        h.ok(A, index=10)
        d = h.client.get("k")
        h.pop(A).respond(404, error_body(100, "Key not found", "/k", 9), {"x-etcd-index": "9"})
        h.ok(B, index=10)
        self.successResultOf(d)

    def test_every_member_stale(self) -> None:
        """With every member behind, EtcdStaleAnswer is reported for each."""
        h = Harness(max_retries=0)
        h.client.set("k", "v")
        h.ok(A, index=10)
        d = h.client.get("k")
        for member in (A, B, C):
            h.ok(member, index=9)
        error = self.failureResultOf(d, ClusterUnavailable).value
        self.assertTrue(all(isinstance(e, EtcdStaleAnswer) for _, e in error.errors))
        self.assertIn("stale", str(error))

    def test_validation_error_index_zero_not_stale(self) -> None:
        """An error answer with index 0 (validation) is not taken for a stale one."""
        h = Harness()
        h.client.set("k", "v")
        h.ok(A, index=10)
        d = h.client.get("k")
        h.pop(A).respond(400, error_body(209, "Invalid field"), {"x-etcd-index": "0"})
        self.failureResultOf(d)
        self.assertTrue(h.idle())

    def test_writes_are_not_stale_checked(self) -> None:
        """A write's answer is never rejected as stale (it could not be resent safely)."""
        h = Harness()
        h.client.get("k")
        h.ok(A, index=10)
        d = h.client.create("k2", "v")
        h.pop(A).respond(201, node_body("create", "/k2", "v", 3), {"x-etcd-index": "3"})
        self.successResultOf(d)

    def test_foreign_cluster_never_mixed_in(self) -> None:
        """A member answering with another cluster ID is skipped now and later."""
        h = Harness(timeout=60.0)
        d = h.client.get("k")
        h.ok(A)
        self.successResultOf(d)
        h.client.get("k")
        h.pop(A).refuse()
        h.ok(B, headers={"x-etcd-cluster-id": "other"})
        h.ok(C)
        d = h.client.get("k")
        h.pop(C).refuse()
        h.ok(A)
        self.successResultOf(d)
        d = h.client.get("k")
        h.pop(A).refuse()
        h.pop(C).refuse()
        h.clock.advance(1.0)
        h.pop(A).refuse()
        h.pop(C).refuse()
        h.clock.advance(2.0)
        h.pop(A).refuse()
        h.pop(C).refuse()
        h.clock.advance(4.0)
        h.pop(A).refuse()
        h.pop(C).refuse()
        h.clock.advance(8.0)
        h.pop(A).refuse()
        h.pop(C).refuse()
        error = self.failureResultOf(d, ClusterUnavailable).value
        mismatch = dict(error.errors)[B]
        self.assertIsInstance(mismatch, EtcdClusterMismatch)
        self.assertIn("other", str(mismatch))
        self.assertTrue(h.idle())


class RedirectTests(SynchronousTestCase):
    """
    307 is followed for GET only, boundedly; 301 never.
    """

    def test_307_followed_for_get(self) -> None:
        """A 307 to the same path on another host is followed for a GET."""
        h = Harness(A)
        d = h.client.get("k")
        h.pop(A).respond(307, b"", {"location": "http://b:2/v2/keys/k"})
        request = h.pop(B)
        self.assertEqual(request.target, "/v2/keys/k")
        request.respond(200, node_body("get", "/k", "v", 5))
        self.successResultOf(d)

    def test_307_bounded(self) -> None:
        """A redirect loop stops after three hops with an EtcdProtocolError."""
        h = Harness(A)
        d = h.client.get("k")
        for _ in range(4):
            h.pop(A).respond(307, b"", {"location": "http://a:1/v2/keys/k"})
        self.failureResultOf(d, EtcdProtocolError)
        self.assertTrue(h.idle())

    def test_307_not_followed_for_writes(self) -> None:
        """A 307 answer to a PUT is an error, not followed."""
        h = Harness(A)
        d = h.client.set("k", "v")
        h.pop(A).respond(307, b"", {"location": "http://b:2/v2/keys/k"})
        self.failureResultOf(d, EtcdProtocolError)
        self.assertEqual(len(h.agent.requests), 1)

    def test_307_to_other_path_not_followed(self) -> None:
        """A 307 that leaves the requested key is not followed."""
        h = Harness(A)
        d = h.client.get("k")
        h.pop(A).respond(307, b"", {"location": "http://b:2/v2/keys/other"})
        self.failureResultOf(d, EtcdProtocolError)
        self.assertEqual(len(h.agent.requests), 1)

    def test_301_never_followed(self) -> None:
        """A 301 is never followed, even for a GET."""
        h = Harness(A)
        d = h.client.get("k")
        h.pop(A).respond(301, b"", {"location": "/v2/keys/k", "content-type": "text/html"})
        error = self.failureResultOf(d, EtcdProtocolError).value
        self.assertIn("redirect", str(error))
        self.assertEqual(len(h.agent.requests), 1)


def members_body(*urls: str) -> dict[str, Any]:
    """
    A /v2/members document with one member per client URL.
    """
    return {
        "members": [
            {"id": f"{i:x}", "name": f"m{i}", "peerURLs": [], "clientURLs": [url]}
            for i, url in enumerate(urls)
        ]
    }


class SyncTests(SynchronousTestCase):
    """
    The member list is refreshed from /v2/members by start(), until close().
    """

    def test_sync_loop(self) -> None:
        """start() syncs at once and every interval; close() stops it."""
        h = Harness(A, sync_interval=30.0)
        self.assertEqual(h.agent.requests, [])
        h.client.start()
        request = h.pop(A)
        self.assertEqual(request.target, "/v2/members")
        request.respond(200, members_body("http://b:2", "http://c:3/", ""))
        self.assertEqual(h.client.endpoints, [B, C])
        h.clock.advance(30.0)
        h.pop(B).respond(200, members_body("http://b:2", "http://c:3", "http://d:4"))
        self.assertEqual(h.client.endpoints, [B, C, "http://d:4"])
        self.successResultOf(h.client.close())
        self.assertTrue(h.idle())

    def test_sync_failure_keeps_list(self) -> None:
        """A failed sync keeps the member list and the loop goes on."""
        h = Harness(f"{A},{B}", sync_interval=30.0, max_retries=0)
        h.client.start()
        h.pop(A).refuse()
        h.pop(B).refuse()
        self.assertEqual(h.client.endpoints, [A, B])
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        h.clock.advance(30.0)
        h.pop(A).respond(200, members_body(A))
        self.assertEqual(h.client.endpoints, [A])
        self.successResultOf(h.client.close())
        self.assertTrue(h.idle())

    def test_close_cancels_sync_in_flight(self) -> None:
        """close() cancels a sync in flight; its late answer changes nothing."""
        h = Harness(A, sync_interval=30.0)
        h.client.start()
        request = h.pop(A)
        self.successResultOf(h.client.close())
        request.respond(200, members_body(B))
        self.assertEqual(h.client.endpoints, [A])
        self.assertTrue(h.idle())

    def test_prefer_leader(self) -> None:
        """With prefer_leader, start() finds the leader and requests go to it first."""
        h = Harness(MEMBERS, prefer_leader=True)
        h.client.start()
        h.pop(A).respond(200, members_body(A, B, C))
        leader = h.pop(A)
        self.assertEqual(leader.target, "/v2/members/leader")
        leader.respond(200, {"id": "2", "name": "m2", "peerURLs": [], "clientURLs": [C]})
        self.assertTrue(h.idle())
        d = h.client.get("k")
        h.ok(C)
        self.successResultOf(d)

    def test_no_sync_without_options(self) -> None:
        """start() without sync_interval or prefer_leader sends nothing."""
        h = Harness()
        h.client.start()
        self.assertTrue(h.idle())

    def test_client_urls(self) -> None:
        """client_urls skips invalid URLs and duplicates."""
        doc = members_body(A, "ftp://x", A, B)
        self.assertEqual(client_urls(doc), [A, B])
        self.assertEqual(client_urls({"clientURLs": [C]}), [C])
        self.assertEqual(client_urls("junk"), [])


def fake_resolver(table: dict[str, list[tuple[int, int, int, str]]]) -> IResolver:
    """
    A resolver answering SRV lookups from ``table``.
    """
    return cast(IResolver, FakeResolver(table))


class FakeResolver:
    """
    Answers SRV lookups from a table.
    """

    def __init__(self, table: dict[str, list[tuple[int, int, int, str]]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def lookupService(self, name: str, timeout: Any = None) -> Deferred[Any]:
        self.asked.append(name)
        if name not in self.table:
            d: Deferred[Any] = Deferred()
            d.errback(DNSNameError(name))
            return d
        answers = [
            dns.RRHeader(name, dns.SRV, payload=dns.Record_SRV(p, w, port, target))
            for p, w, port, target in self.table[name]
        ]
        return succeed((answers, [], []))


class SrvTests(SynchronousTestCase):
    """
    Endpoints from DNS SRV records.
    """

    def test_from_srv(self) -> None:
        """TLS records come first, each service ordered by priority then weight."""
        resolver = fake_resolver(
            {
                "_etcd-client._tcp.example.com": [
                    (10, 0, 2379, "b.example.com"),
                    (0, 5, 2379, "a.example.com."),
                ],
                "_etcd-client-ssl._tcp.example.com": [(0, 0, 2379, "s.example.com")],
            }
        )
        clock = Clock()
        d = EtcdClient.from_srv(
            "example.com", resolver=resolver, reactor=clock, agent=RecordingAgent(clock)
        )
        client = self.successResultOf(d)
        self.assertEqual(
            client.endpoints,
            [
                "https://s.example.com:2379",
                "http://a.example.com:2379",
                "http://b.example.com:2379",
            ],
        )

    def test_no_records(self) -> None:
        """Without SRV records the error names both services."""
        d = Deferred.fromCoroutine(endpoints_from_srv("example.com", fake_resolver({})))
        error = self.failureResultOf(d, EtcdConnectionError).value
        self.assertIn("_etcd-client._tcp.example.com", str(error))
        self.assertIn("_etcd-client-ssl._tcp.example.com", str(error))

    def test_bad_domain(self) -> None:
        """An empty domain is refused before any lookup."""
        self.assertRaises(ValueError, EtcdClient.from_srv, "", resolver=fake_resolver({}))

    def test_nameservers(self) -> None:
        """resolv.conf name servers are read; none means the local one."""
        lines = ["# c", "nameserver 10.0.0.2", "nameserver ::1", "search x"]
        self.assertEqual(nameservers(lines), [("10.0.0.2", 53)])
        self.assertEqual(nameservers([]), [("127.0.0.1", 53)])


class WatchFailoverTests(SynchronousTestCase):
    """
    Watches fail over like reads.
    """

    def test_watch_raft_error_retried(self) -> None:
        """A watch answered 500/300 is retried on another member after a back-off."""
        h = Harness()
        d = h.client.watch("k", index=7)
        h.pop(A).respond(500, error_body(300, "Raft Internal Error"))
        h.clock.advance(1.0)
        request = h.pop(B)
        self.assertIn("waitIndex=7", request.target)
        request.respond(200, node_body("set", "/k", "v", 7), {"x-etcd-index": "6"})
        self.assertEqual(self.successResultOf(d).node.modified_index, 7)
        self.assertTrue(h.idle())


class ClusterTests(SynchronousTestCase):
    """
    The Cluster on its own.
    """

    def test_replace_keeps_pin(self) -> None:
        """A new member list keeps the pinned member when it is still listed."""
        cluster = Cluster([A, B, C])
        cluster.pin(B)
        cluster.replace([C, B])
        self.assertEqual((cluster.endpoints, cluster.pinned), ([C, B], B))
        cluster.replace([A])
        self.assertEqual((cluster.endpoints, cluster.pinned), ([A], A))
        cluster.replace([])
        self.assertEqual(cluster.endpoints, [A])

    def test_non_keyspace_answers_returned(self) -> None:
        """Outside the key space, a 503 (e.g. no leader) is an answer, not a failure."""
        h = Harness()
        d = h.client.raw("GET", "/v2/members/leader")
        h.pop(A).respond(503, {"message": "During election"}, {"x-etcd-cluster-id": "cid"})
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertTrue(h.idle())
