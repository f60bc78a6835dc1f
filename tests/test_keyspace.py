"""
Tests for the key-space conveniences and exact errors (txetcd2._api.keyspace,
txetcd2._api.keys): exists(), children(), JSON values, modify(),
noValueOnSuccess, per-call max_retries, and values and flags refused before I/O.
"""

from __future__ import annotations

import json

from twisted.application.internet import backoffPolicy
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import (
    EtcdClient,
    EtcdConnectionError,
    EtcdV2Disabled,
    KeyNotFound,
    NotDir,
    TestFailed,
    ValueNotJSON,
)
from txetcd2.testing._fakes import RecordingAgent, error_body, node_body

A = "http://a:1"


class KeySpaceTestCase(SynchronousTestCase):
    """
    A one-member client over a recording agent and a clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        policy = backoffPolicy(initialDelay=1.0, factor=2.0, jitter=lambda: 0.0)
        self.client = EtcdClient(
            A, reactor=self.clock, agent=self.agent, retry_policy=policy, timeout=60.0
        )

    def tearDown(self) -> None:
        self.successResultOf(self.client.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RefusedBeforeIOTests(KeySpaceTestCase):
    """
    Bad values and flags raise at the call, naming the parameter.
    """

    def test_none_value(self) -> None:
        """set/create/update/append/compare_and_swap refuse None instead of storing ""."""
        calls = [
            lambda: self.client.set("k", None),  # type: ignore[arg-type]
            lambda: self.client.create("k", None),  # type: ignore[arg-type]
            lambda: self.client.update("k", None),  # type: ignore[arg-type]
            lambda: self.client.append("q", None),  # type: ignore[arg-type]
            lambda: self.client.compare_and_swap("k", None, prev_index=3),  # type: ignore[arg-type]
        ]
        for call in calls:
            self.assertRaises(TypeError, call)
        self.assertEqual(self.agent.requests, [])

    def test_flag_named(self) -> None:
        """A flag that is not a bool names its parameter."""
        error = self.assertRaises(TypeError, self.client.get, "k", recursive="yes")
        self.assertIn("recursive", str(error))
        error = self.assertRaises(TypeError, self.client.set, "k", "v", no_value_on_success=1)
        self.assertIn("no_value_on_success", str(error))

    def test_max_retries_checked(self) -> None:
        """max_retries= must be an int of 0 or more."""
        self.assertRaises(ValueError, self.client.get, "k", max_retries=-1)
        self.assertRaises(TypeError, self.client.get, "k", max_retries=1.5)

    def test_messages(self) -> None:
        """KeyNotFound's hint names the calls that take a default; a refused connection's
        reason does not end in a double period."""
        text = str(KeyNotFound(100, "Key not found", "/k", 3, 404))
        self.assertIn("get_value() takes a default", text)
        self.assertNotIn("..", str(EtcdConnectionError(A, "Connection refused.")))

    def test_host_port_endpoints(self) -> None:
        """host:port is taken as http://host:port."""
        client = EtcdClient("127.0.0.1:2379, h:1", reactor=self.clock, agent=self.agent)
        self.assertEqual(client.endpoints, ["http://127.0.0.1:2379", "http://h:1"])


class ConvenienceTests(KeySpaceTestCase):
    """
    exists(), children(), JSON values, modify() and noValueOnSuccess.
    """

    def test_exists(self) -> None:
        """exists() sends HEAD: 200 is True, etcd's JSON 404 is False."""
        d = self.client.exists("k")
        request = self.agent.pop()
        self.assertEqual((request.method, request.target), ("HEAD", "/v2/keys/k"))
        request.respond(200, b"", {"x-etcd-index": "3"})
        self.assertTrue(self.successResultOf(d))
        d = self.client.exists("k")
        self.agent.pop().respond(404, b"", {"x-etcd-index": "3"})
        self.assertFalse(self.successResultOf(d))

    def test_exists_v2_disabled(self) -> None:
        """A HEAD answered by Go's plain 404 is asked again with a GET, which tells that v2
        is disabled."""
        d = self.client.exists("k")
        self.agent.pop().respond(404, b"", {"content-type": "text/plain"})
        self.agent.pop().respond(404, b"404 page not found", {"content-type": "text/plain"})
        self.agent.pop().respond(200, {"etcdserver": "3.4.23"})
        self.failureResultOf(d, EtcdV2Disabled)

    def test_children(self) -> None:
        """children() maps relative names to values (None for directories), one level or
        recursive, and refuses a plain key."""
        listing = node_body(
            "get",
            "/d",
            None,
            2,
            dir=True,
            nodes=[
                {"key": "/d/a", "value": "1", "modifiedIndex": 3, "createdIndex": 3},
                {
                    "key": "/d/s",
                    "dir": True,
                    "modifiedIndex": 4,
                    "createdIndex": 4,
                    "nodes": [{"key": "/d/s/b", "value": "2", "modifiedIndex": 5}],
                },
            ],
        )
        d = self.client.children("d")
        request = self.agent.pop()
        self.assertIn("sorted=true", request.target)
        request.respond(200, listing)
        self.assertEqual(self.successResultOf(d), {"a": "1", "s": None})
        d = self.client.children("d", recursive=True)
        self.agent.pop().respond(200, listing)
        self.assertEqual(self.successResultOf(d), {"a": "1", "s/b": "2"})
        d = self.client.children("d/a")
        self.agent.pop().respond(200, node_body("get", "/d/a", "1", 3))
        self.failureResultOf(d, NotDir)

    def test_json(self) -> None:
        """set_json stores compact sorted JSON; get_json decodes it, takes a default, and
        says ValueNotJSON for text."""
        d = self.client.set_json("k", {"b": 1, "a": [True]})
        request = self.agent.pop()
        self.assertEqual(request.body, b"value=%7B%22a%22%3A%5Btrue%5D%2C%22b%22%3A1%7D")
        request.respond(200, node_body("set", "/k", '{"a":[true],"b":1}', 3))
        self.successResultOf(d)
        d = self.client.get_json("k")
        self.agent.pop().respond(200, node_body("get", "/k", '{"a":[true],"b":1}', 3))
        self.assertEqual(self.successResultOf(d), {"a": [True], "b": 1})
        d = self.client.get_json("k", default=None)
        self.agent.pop().respond(404, error_body(100, "Key not found", "/k", 3))
        self.assertIsNone(self.successResultOf(d))
        d = self.client.get_json("k")
        self.agent.pop().respond(200, node_body("get", "/k", "text", 3))
        self.assertIn("get_value()", str(self.failureResultOf(d, ValueNotJSON).value))
        self.assertRaises(TypeError, self.client.set_json, "k", object())

    def test_modify_retries_lost_race(self) -> None:
        """modify() reads with quorum, swaps on the read's index, and starts over when
        another writer won the race."""
        d = self.client.modify("n", lambda v: str(int(v or "0") + 1))
        read = self.agent.pop()
        self.assertIn("quorum=true", read.target)
        read.respond(200, node_body("get", "/n", "1", 7))
        swap = self.agent.pop()
        self.assertIn("prevIndex=7", swap.target)
        self.assertEqual(swap.body, b"value=2")
        swap.respond(412, error_body(101, "Compare failed", "[7 != 8]", 8))
        self.agent.pop().respond(200, node_body("get", "/n", "5", 8))
        swap = self.agent.pop()
        self.assertIn("prevIndex=8", swap.target)
        self.assertEqual(swap.body, b"value=6")
        swap.respond(200, node_body("compareAndSwap", "/n", "6", 9))
        self.assertEqual(self.successResultOf(d).node.value, "6")

    def test_modify_creates_missing_and_gives_up(self) -> None:
        """modify() creates a missing key with change(None), and fails with TestFailed
        after its attempts."""
        d = self.client.modify("n", lambda v: "first" if v is None else v + "!", attempts=1)
        self.agent.pop().respond(404, error_body(100, "Key not found", "/n", 3))
        create = self.agent.pop()
        self.assertIn("prevExist=false", create.target)
        create.respond(201, node_body("create", "/n", "first", 4))
        self.assertEqual(self.successResultOf(d).action, "create")
        d = self.client.modify("n", lambda v: (v or "") + "!", attempts=1)
        self.agent.pop().respond(200, node_body("get", "/n", "first", 4))
        self.agent.pop().respond(412, error_body(101, "Compare failed", "[4 != 5]", 5))
        self.failureResultOf(d, TestFailed)

    def test_no_value_on_success(self) -> None:
        """no_value_on_success asks etcd for a short answer; the node has the key and the
        answer's index."""
        d = self.client.set("k", "v", no_value_on_success=True)
        request = self.agent.pop()
        self.assertIn("noValueOnSuccess=true", request.target)
        request.respond(200, json.dumps({"action": "set"}).encode(), {"x-etcd-index": "12"})
        response = self.successResultOf(d)
        self.assertEqual((response.node.key, response.node.modified_index), ("/k", 12))

    def test_per_call_max_retries(self) -> None:
        """max_retries=0 on one call makes a single attempt even if the client allows more."""
        d = self.client.get("k", max_retries=0)
        self.agent.pop().refuse()
        self.failureResultOf(d, EtcdConnectionError)
        d = self.client.get("k")
        self.agent.pop().refuse()
        self.clock.advance(1.0)
        self.agent.pop().respond(200, node_body("get", "/k", "v", 3))
        self.successResultOf(d)
