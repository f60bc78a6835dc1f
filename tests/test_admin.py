"""
Unit tests for the members, statistics, health, version, machines and raw
calls, the v2-disabled detection and the cluster status.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import (
    ClusterStatus,
    EtcdAdminError,
    EtcdClient,
    EtcdProtocolError,
    EtcdV2Disabled,
    KeyNotFound,
    Member,
    MemberChangeRefused,
    MemberNotFound,
    MemberRemoved,
    NoLeader,
    PeerURLExists,
    RawAnswer,
)
from txetcd2.testing._fakes import FakeRequest, RecordingAgent, error_body

A = "http://a:1"
B = "http://b:2"
C = "http://c:3"
TEXT = {"content-type": "text/plain; charset=utf-8"}
VERSION = {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}


def member_doc(member_id: str, name: str, peer: str, client: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": member_id, "name": name, "peerURLs": [peer]}
    if client is not None:
        doc["clientURLs"] = [client]
    return doc


class AdminTestCase(SynchronousTestCase):
    """
    A client over a recording agent and a clock.
    """

    endpoints = A

    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        self.client = EtcdClient(self.endpoints, reactor=self.clock, agent=self.agent)

    def tearDown(self) -> None:
        self.successResultOf(self.client.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def next(self, method: str, target: str, netloc: str = A) -> FakeRequest:
        request = self.agent.pop()
        self.assertEqual(
            (request.method, request.netloc, request.target), (method, netloc, target)
        )
        return request

    def not_found_page(self, request: FakeRequest) -> None:
        request.respond(404, b"404 page not found\n", TEXT)


class MembersTests(AdminTestCase):
    """
    members(), leader(), add_member(), remove_member(), update_member().
    """

    def test_members(self) -> None:
        """
        members() decodes etcd's member list into frozen Member records.
        """
        d = self.client.members()
        self.next("GET", "/v2/members").respond(
            200,
            {
                "members": [
                    member_doc("8e9e05c52164694d", "etcd0", "http://p:1", A),
                    member_doc("91bc3c398fb3c146", "", "http://p:2", None),
                ]
            },
        )
        self.assertEqual(
            self.successResultOf(d),
            [
                Member("8e9e05c52164694d", "etcd0", ("http://p:1",), (A,)),
                Member("91bc3c398fb3c146", "", ("http://p:2",), ()),
            ],
        )

    def test_members_not_a_list(self) -> None:
        """
        An answer without a member list is a protocol error, not a crash.
        """
        d = self.client.members()
        self.next("GET", "/v2/members").respond(200, {"members": "nope"})
        self.failureResultOf(d, EtcdProtocolError)

    def test_members_failover(self) -> None:
        """
        members() asks the next member when the first refuses the connection.
        """
        self.client = EtcdClient([A, B], reactor=self.clock, agent=self.agent)
        d = self.client.members()
        self.next("GET", "/v2/members").refuse()
        self.next("GET", "/v2/members", B).respond(200, {"members": []})
        self.assertEqual(self.successResultOf(d), [])

    def test_leader(self) -> None:
        """
        leader() decodes the leader's member record.
        """
        d = self.client.leader()
        self.next("GET", "/v2/members/leader").respond(
            200, member_doc("8e9e05c52164694d", "etcd0", "http://p:1", A)
        )
        self.assertEqual(self.successResultOf(d).name, "etcd0")

    def test_leader_during_election(self) -> None:
        """
        A 503 "During election" from /v2/members/leader is a NoLeader error.
        """
        d = self.client.leader()
        self.next("GET", "/v2/members/leader").respond(503, {"message": "During election"})
        error = self.failureResultOf(d, NoLeader).value
        self.assertEqual((error.status, error.message), (503, "During election"))
        self.assertIn("During election", str(error))
        self.assertIn("retry", str(error))

    def test_add_member(self) -> None:
        """
        add_member() POSTs the peer URLs as JSON and returns the new member.
        """
        d = self.client.add_member(["http://10.0.0.4:2380"])
        request = self.next("POST", "/v2/members")
        self.assertEqual(request.headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(json.loads(request.body), {"peerURLs": ["http://10.0.0.4:2380"]})
        request.respond(201, member_doc("abc", "", "http://10.0.0.4:2380", None))
        member = self.successResultOf(d)
        self.assertEqual(member, Member("abc", "", ("http://10.0.0.4:2380",), ()))
        self.assertFalse(member.started)

    def test_add_member_exists(self) -> None:
        """
        A 409 from add_member() is PeerURLExists, with etcd's message.
        """
        d = self.client.add_member("http://10.0.0.4:2380")
        self.next("POST", "/v2/members").respond(409, {"message": "membership: peerURL exists"})
        error = self.failureResultOf(d, PeerURLExists).value
        self.assertIn("peerURL exists", str(error))

    def test_add_member_refused(self) -> None:
        """
        etcd's bare 500 to a membership change is MemberChangeRefused, with the likely cause.
        """
        d = self.client.add_member("http://10.0.0.4:2380")
        self.next("POST", "/v2/members").respond(500, {"message": "Internal Server Error"})
        error = self.failureResultOf(d, MemberChangeRefused).value
        self.assertIn("connected for 5 seconds", str(error))

    def test_add_member_not_resent(self) -> None:
        """
        An add_member() whose connection broke after sending is not resent elsewhere.
        """
        from txetcd2 import EtcdOutcomeUnknown

        self.client = EtcdClient([A, B], reactor=self.clock, agent=self.agent)
        d = self.client.add_member("http://10.0.0.4:2380")
        self.next("POST", "/v2/members").fail(RuntimeError("connection lost"))
        self.failureResultOf(d, EtcdOutcomeUnknown)
        self.assertEqual(self.agent.pending(), [])

    def test_add_member_bad_urls(self) -> None:
        """
        Bad peer URLs raise at once, before any request.
        """
        for bad in ([], ["10.0.0.4:2380"], ["ftp://h:1"], ["http://h"], ["http://h:1/x"]):
            self.assertRaises(ValueError, self.client.add_member, bad)
        self.assertRaises(TypeError, self.client.add_member, [b"http://h:1"])
        self.assertRaises(TypeError, self.client.add_member, 5)
        self.assertEqual(self.agent.requests, [])

    def test_remove_member(self) -> None:
        """
        remove_member() DELETEs /v2/members/<id> and fires with None on 204.
        """
        d = self.client.remove_member("ABC123")
        self.next("DELETE", "/v2/members/abc123").respond(204, b"")
        self.assertIsNone(self.successResultOf(d))

    def test_remove_member_accepts_member(self) -> None:
        """
        remove_member() takes a Member as well as its id.
        """
        d = self.client.remove_member(Member("abc", "x"))
        self.next("DELETE", "/v2/members/abc").respond(204, b"")
        self.assertIsNone(self.successResultOf(d))

    def test_remove_unknown_member(self) -> None:
        """
        A 404 from remove_member() is MemberNotFound.
        """
        d = self.client.remove_member("1234")
        self.next("DELETE", "/v2/members/1234").respond(404, {"message": "No such member: 1234"})
        self.assertIn("No such member", str(self.failureResultOf(d, MemberNotFound).value))

    def test_remove_removed_member(self) -> None:
        """
        A 410 from remove_member() is MemberRemoved.
        """
        d = self.client.remove_member("1234")
        self.next("DELETE", "/v2/members/1234").respond(
            410, {"message": "Member permanently removed: 1234"}
        )
        self.failureResultOf(d, MemberRemoved)

    def test_bad_member_id(self) -> None:
        """
        A member id that is not hexadecimal raises at once.
        """
        self.assertRaises(ValueError, self.client.remove_member, "etcd0")
        self.assertRaises(ValueError, self.client.remove_member, "")
        self.assertRaises(ValueError, self.client.update_member, "1/2", ["http://h:1"])
        self.assertRaises(TypeError, self.client.remove_member, 12)
        self.assertEqual(self.agent.requests, [])

    def test_update_member(self) -> None:
        """
        update_member() PUTs the new peer URLs as JSON.
        """
        d = self.client.update_member("abc", ["http://10.0.0.5:2380"])
        request = self.next("PUT", "/v2/members/abc")
        self.assertEqual(request.headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(json.loads(request.body), {"peerURLs": ["http://10.0.0.5:2380"]})
        request.respond(204, b"")
        self.assertIsNone(self.successResultOf(d))

    def test_other_message_error(self) -> None:
        """
        Any other {"message": ...} answer is an EtcdAdminError carrying status and message.
        """
        d = self.client.add_member("http://10.0.0.4:2380")
        self.next("POST", "/v2/members").respond(400, {"message": "URL scheme must be http"})
        error = self.failureResultOf(d, EtcdAdminError).value
        self.assertIs(type(error), EtcdAdminError)
        self.assertEqual(error.status, 400)
        self.assertEqual(str(error), f"etcd at {A} answered HTTP 400: URL scheme must be http")


class InformationTests(AdminTestCase):
    """
    version(), health(), machines() and the statistics.
    """

    def test_version(self) -> None:
        """
        version() returns etcd's version dict.
        """
        d = self.client.version()
        self.next("GET", "/version").respond(200, VERSION)
        self.assertEqual(self.successResultOf(d), VERSION)

    def test_version_not_etcd(self) -> None:
        """
        A /version that is not etcd's is a protocol error.
        """
        d = self.client.version()
        self.next("GET", "/version").respond(200, {"hello": "world"})
        self.failureResultOf(d, EtcdProtocolError)

    def test_healthy(self) -> None:
        """
        health() is True for 200 {"health": "true"} (etcd labels it text/plain).
        """
        d = self.client.health()
        self.next("GET", "/health").respond(200, b'{"health":"true"}', TEXT)
        self.assertIs(self.successResultOf(d), True)

    def test_unhealthy(self) -> None:
        """
        health() is False, not an error, for 503 {"health": "false"}.
        """
        d = self.client.health()
        self.next("GET", "/health").respond(503, b'{"health":"false"}', TEXT)
        self.assertIs(self.successResultOf(d), False)

    def test_health_garbage(self) -> None:
        """
        A /health answer that is not etcd's is a protocol error.
        """
        d = self.client.health()
        self.next("GET", "/health").respond(200, b"OK", TEXT)
        self.failureResultOf(d, EtcdProtocolError)

    def test_machines(self) -> None:
        """
        machines() splits etcd's comma-separated plain-text list.
        """
        d = self.client.machines()
        self.next("GET", "/v2/machines").respond(200, f"{A}, {B}".encode(), TEXT)
        self.assertEqual(self.successResultOf(d), [A, B])

    def test_self_and_store_stats(self) -> None:
        """
        self_stats() and store_stats() return etcd's documents as dicts.
        """
        d = self.client.self_stats()
        self.next("GET", "/v2/stats/self").respond(200, {"name": "etcd0", "state": "StateLeader"})
        self.assertEqual(self.successResultOf(d)["state"], "StateLeader")
        d = self.client.store_stats()
        self.next("GET", "/v2/stats/store").respond(200, {"getsSuccess": 3})
        self.assertEqual(self.successResultOf(d), {"getsSuccess": 3})

    def test_leader_stats_from_leader(self) -> None:
        """
        leader_stats() returns the leader's answer when the member asked leads.
        """
        d = self.client.leader_stats()
        self.next("GET", "/v2/stats/leader").respond(200, {"leader": "abc", "followers": {}})
        self.assertEqual(self.successResultOf(d)["leader"], "abc")

    def test_leader_stats_from_follower(self) -> None:
        """
        When a follower answers 403, leader_stats() finds the leader and asks it.
        """
        d = self.client.leader_stats()
        self.next("GET", "/v2/stats/leader").respond(403, {"message": "not current leader"})
        self.next("GET", "/v2/members/leader").respond(
            200, member_doc("abc", "etcd1", "http://p:2", B)
        )
        self.next("GET", "/v2/stats/leader", B).respond(200, {"leader": "abc", "followers": {}})
        self.assertEqual(self.successResultOf(d), {"leader": "abc", "followers": {}})

    def test_leader_stats_no_leader(self) -> None:
        """
        leader_stats() fails with NoLeader when a follower answers and there is no leader.
        """
        d = self.client.leader_stats()
        self.next("GET", "/v2/stats/leader").respond(403, {"message": "not current leader"})
        self.next("GET", "/v2/members/leader").respond(503, {"message": "During election"})
        self.failureResultOf(d, NoLeader)


class RawTests(AdminTestCase):
    """
    raw(): any request, any answer.
    """

    def test_get_json(self) -> None:
        """
        raw() encodes params and decodes a JSON answer, with etcd's headers.
        """
        d = self.client.raw("get", "/v2/keys/a", {"recursive": True, "waitIndex": 7})
        self.next("GET", "/v2/keys/a?recursive=true&waitIndex=7").respond(
            200, {"action": "get"}, {"x-etcd-index": "9"}
        )
        answer = self.successResultOf(d)
        self.assertIsInstance(answer, RawAnswer)
        self.assertEqual((answer.status, answer.body), (200, {"action": "get"}))
        self.assertEqual(answer.headers["x-etcd-index"], "9")
        self.assertEqual(answer.endpoint, A)
        self.assertTrue(answer.ok)

    def test_put_form(self) -> None:
        """
        A mapping body is sent as a form, as etcd's key space expects.
        """
        d = self.client.raw("PUT", "/v2/keys/a", body={"value": "x y", "ttl": 5})
        request = self.next("PUT", "/v2/keys/a")
        self.assertEqual(request.body, b"value=x+y&ttl=5")
        self.assertEqual(
            request.headers.getRawHeaders(b"content-type"),
            [b"application/x-www-form-urlencoded"],
        )
        request.respond(201, {"action": "set"})
        self.assertEqual(self.successResultOf(d).status, 201)

    def test_json_body(self) -> None:
        """
        json_body= is sent as JSON.
        """
        d = self.client.raw("POST", "/v2/members", json_body={"peerURLs": ["http://h:1"]})
        request = self.next("POST", "/v2/members")
        self.assertEqual(request.headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(json.loads(request.body), {"peerURLs": ["http://h:1"]})
        request.respond(201, member_doc("abc", "", "http://h:1", None))
        self.assertEqual(self.successResultOf(d).body["id"], "abc")

    def test_errors_are_answers(self) -> None:
        """
        raw() fires with error statuses instead of raising, text bodies as text.
        """
        d = self.client.raw("GET", "/v2/nope")
        self.not_found_page(self.next("GET", "/v2/nope"))
        answer = self.successResultOf(d)
        self.assertEqual((answer.status, answer.body), (404, "404 page not found\n"))
        self.assertFalse(answer.ok)

    def test_bad_arguments(self) -> None:
        """
        Bad methods, paths, params and bodies raise at once.
        """
        raw = self.client.raw
        self.assertRaises(ValueError, raw, "GET", "v2/keys")
        self.assertRaises(ValueError, raw, "GET", "/v2/keys?x=1")
        self.assertRaises(ValueError, raw, "GET", "/v2/a b")
        self.assertRaises(ValueError, raw, "GE T", "/v2/keys")
        self.assertRaises(TypeError, raw, "GET", "/v2/keys", {"a": 1.5})
        self.assertRaises(TypeError, raw, "PUT", "/v2/keys/a", None, 5)
        self.assertRaises(ValueError, raw, "PUT", "/v2/keys/a", None, b"x", json_body={})
        self.assertEqual(self.agent.requests, [])

    def test_get_fails_over(self) -> None:
        """
        A raw GET whose connection broke is asked again of the next member.
        """
        self.client = EtcdClient([A, B], reactor=self.clock, agent=self.agent)
        d = self.client.raw("GET", "/version")
        self.next("GET", "/version").fail(RuntimeError("reset"))
        self.next("GET", "/version", B).respond(200, VERSION)
        self.assertEqual(self.successResultOf(d).body, VERSION)

    def test_put_not_resent(self) -> None:
        """
        A raw PUT whose connection broke is not sent again: its outcome is unknown.
        """
        from txetcd2 import EtcdOutcomeUnknown

        self.client = EtcdClient([A, B], reactor=self.clock, agent=self.agent)
        d = self.client.raw("PUT", "/v2/keys/a", body={"value": "1"})
        self.next("PUT", "/v2/keys/a").fail(RuntimeError("reset"))
        self.failureResultOf(d, EtcdOutcomeUnknown)
        self.assertEqual(self.agent.pending(), [])


class V2DisabledTests(AdminTestCase):
    """
    Go's plain-text 404 on /v2, confirmed by /version.
    """

    def assertDisabled(self, d: Deferred[Any], target: str) -> None:
        self.not_found_page(self.next(target.split()[0], target.split()[1]))
        self.next("GET", "/version").respond(200, VERSION)
        error = self.failureResultOf(d, EtcdV2Disabled).value
        self.assertEqual((error.endpoint, error.server_version), (A, "3.4.23"))
        self.assertIn("--enable-v2=true", str(error))
        self.assertIn("3.4.23", str(error))

    def test_keys(self) -> None:
        """
        A key-space call on a server without v2 is EtcdV2Disabled, never KeyNotFound.
        """
        self.assertDisabled(self.client.get("a"), "GET /v2/keys/a")

    def test_set(self) -> None:
        """
        A write on a server without v2 is EtcdV2Disabled.
        """
        self.assertDisabled(self.client.set("a", "1"), "PUT /v2/keys/a")

    def test_watch(self) -> None:
        """
        A watch on a server without v2 is EtcdV2Disabled.
        """
        self.assertDisabled(self.client.watch("a"), "GET /v2/keys/a?wait=true")

    def test_members(self) -> None:
        """
        members() on a server without v2 is EtcdV2Disabled, not MemberNotFound.
        """
        self.assertDisabled(self.client.members(), "GET /v2/members")

    def test_remove_member(self) -> None:
        """
        remove_member() on a server without v2 is EtcdV2Disabled, not MemberNotFound.
        """
        self.assertDisabled(self.client.remove_member("abc"), "DELETE /v2/members/abc")

    def test_stats(self) -> None:
        """
        The statistics calls on a server without v2 are EtcdV2Disabled.
        """
        self.assertDisabled(self.client.self_stats(), "GET /v2/stats/self")
        self.assertDisabled(self.client.leader_stats(), "GET /v2/stats/leader")
        self.assertDisabled(self.client.machines(), "GET /v2/machines")

    def test_version_unreachable(self) -> None:
        """
        When /version cannot be asked, the error is still EtcdV2Disabled, without a version.
        """
        d = self.client.get("a")
        self.not_found_page(self.next("GET", "/v2/keys/a"))
        self.next("GET", "/version").refuse()
        self.assertIsNone(self.failureResultOf(d, EtcdV2Disabled).value.server_version)

    def test_not_etcd(self) -> None:
        """
        A plain 404 from a server whose /version is not etcd's is a protocol error.
        """
        d = self.client.get("a")
        self.not_found_page(self.next("GET", "/v2/keys/a"))
        self.not_found_page(self.next("GET", "/version"))
        error = self.failureResultOf(d, EtcdProtocolError).value
        self.assertIn("does not answer like etcd", str(error))

    def test_missing_key_still_missing(self) -> None:
        """
        etcd's JSON 404 for a missing key stays KeyNotFound, without asking /version.
        """
        d = self.client.get("a")
        self.next("GET", "/v2/keys/a").respond(404, error_body(100, "Key not found", "/a", 5))
        self.failureResultOf(d, KeyNotFound)
        self.assertEqual(self.agent.pending(), [])


class ClusterStatusTests(AdminTestCase):
    """
    cluster_status(): the human-readable view of the cluster.
    """

    def test_status(self) -> None:
        """
        The status lists each member, reachable or not, leader or not, and the health.
        """
        d = self.client.cluster_status()
        self.next("GET", "/v2/members").respond(
            200,
            {
                "members": [
                    member_doc("a1", "etcd0", "http://p:1", A),
                    member_doc("b2", "etcd1", "http://p:2", B),
                    member_doc("c3", "etcd2", "http://p:3", C),
                    member_doc("d4", "", "http://p:4", None),
                ]
            },
        )
        self.next("GET", "/v2/members/leader").respond(
            200, member_doc("b2", "etcd1", "http://p:2", B)
        )
        by_target = {(r.netloc, r.target): r for r in self.agent.pending()}
        self.assertEqual(len(by_target), 3)
        by_target[(A, "/version")].respond(200, VERSION)
        by_target[(B, "/version")].respond(200, VERSION)
        by_target[(C, "/version")].refuse()
        stats = {r.netloc: r for r in self.agent.pending()}
        self.assertEqual(sorted(stats), [A, B])
        stats[A].respond(200, {"state": "StateFollower"})
        stats[B].respond(200, {"state": "StateLeader"})
        self.next("GET", "/health").respond(200, b'{"health":"true"}', TEXT)
        status = self.successResultOf(d)
        self.assertIsInstance(status, ClusterStatus)
        self.assertTrue(status.healthy)
        self.assertEqual(status.leader, Member("b2", "etcd1", ("http://p:2",), (B,)))
        self.assertEqual(
            [(m.member.id, m.reachable, m.leader) for m in status.members],
            [("a1", True, False), ("b2", True, True), ("c3", False, False), ("d4", False, False)],
        )
        self.assertEqual(status.members[0].version, "3.4.23")
        self.assertEqual(status.members[0].state, "StateFollower")
        text = str(status)
        self.assertEqual(text, status.format())
        lines = text.splitlines()
        self.assertEqual(lines[0], "etcd cluster: healthy, leader etcd1, 2 of 4 members reachable")
        self.assertIn("etcd0", lines[1])
        self.assertIn("follower", lines[1])
        self.assertIn("LEADER", lines[2])
        self.assertIn("DOWN", lines[3])
        self.assertIn("connection refused", lines[3])
        self.assertIn("not started", lines[4])

    def test_status_without_leader(self) -> None:
        """
        Without a leader the status says so and the cluster is unhealthy.
        """
        d = self.client.cluster_status()
        self.next("GET", "/v2/members").respond(
            200, {"members": [member_doc("a1", "etcd0", "http://p:1", A)]}
        )
        self.next("GET", "/v2/members/leader").respond(503, {"message": "During election"})
        self.next("GET", "/version").respond(200, VERSION)
        self.next("GET", "/v2/stats/self").respond(200, {"state": "StateCandidate"})
        self.next("GET", "/health").respond(503, b'{"health":"false"}', TEXT)
        status = self.successResultOf(d)
        self.assertIsNone(status.leader)
        self.assertFalse(status.healthy)
        self.assertIn("UNHEALTHY, no leader", str(status))
        self.assertIn("candidate", str(status))
