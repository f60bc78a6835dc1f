"""
Members, leader, statistics, health, version, machines, raw requests and the
v2-disabled error against real etcd.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.integration._support import EtcdTestCase, eventually
from txetcd2 import (
    EtcdClient,
    EtcdV2Disabled,
    KeyNotFound,
    Member,
    MemberChangeRefused,
    MemberNotFound,
    MemberRemoved,
    PeerURLExists,
)
from txetcd2.testing import start_etcd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def unused_peer_url() -> str:
    """
    A loopback URL nobody listens on, for a member that is never started.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


class ThreeMemberTests(EtcdTestCase):
    """
    The administration calls on a three-member cluster.
    """

    size = 3

    def client_for(self, url: str) -> EtcdClient:
        """
        A client that talks to one member only.
        """
        client = EtcdClient(url, reactor=reactor)
        self.addCleanup(client.close)
        return client

    async def accepted(self, call: Callable[[], Deferred[Any]]) -> Any:
        """
        Make a membership change, retrying while etcd refuses it (it does until
        every member has been connected for 5 s).
        """
        deadline = reactor.seconds() + 60.0
        while True:
            try:
                return await call()
            except MemberChangeRefused:
                if reactor.seconds() > deadline:
                    raise
            await deferLater(reactor, 0.5)

    async def test_members_and_leader(self) -> None:
        """
        members() and leader() match the cluster's own view, from every member.
        """
        expected = {m.name: m.client_url for m in self.cluster.members}
        leader = await self.cluster.wait_for_leader()
        for url in self.cluster.client_urls:
            client = self.client_for(url)
            members = await client.members()
            self.assertEqual(
                {m.name: m.client_urls for m in members},
                {name: (client_url,) for name, client_url in expected.items()},
            )
            self.assertTrue(all(isinstance(m, Member) and m.started for m in members))
            found = await client.leader()
            self.assertEqual(found.name, leader.name)
            self.assertIn(found, members)

    async def test_add_update_remove_member(self) -> None:
        """
        A member added (never started) is listed, can be changed, and removed again.
        """
        existing = (await self.client.members())[0].peer_urls
        with self.assertRaises(PeerURLExists):
            await self.accepted(lambda: self.client.add_member(existing))
        peer = unused_peer_url()
        added: Member = await self.accepted(lambda: self.client.add_member([peer]))
        self.assertEqual((added.name, added.peer_urls, added.client_urls), ("", (peer,), ()))
        self.assertIn(added, await self.client.members())
        moved = unused_peer_url()
        await self.accepted(lambda: self.client.update_member(added.id, [moved]))
        listed = {m.id: m for m in await self.client.members()}
        self.assertEqual(listed[added.id].peer_urls, (moved,))
        await self.accepted(lambda: self.client.remove_member(added))
        self.assertNotIn(added.id, [m.id for m in await self.client.members()])
        self.assertEqual(len(await self.client.members()), 3)
        with self.assertRaises((MemberRemoved, MemberNotFound)):
            await self.client.remove_member(added.id)
        with self.assertRaises(MemberNotFound):
            await self.client.remove_member("1234")

    async def test_stats_from_leader_and_followers(self) -> None:
        """
        Every member gives its self and store stats; leader_stats() works from followers too.
        """
        leader = await self.cluster.wait_for_leader()
        ids = {m.name: m.id for m in await self.client.members()}
        for member in self.cluster.members:
            client = self.client_for(member.client_url)
            mine = await client.self_stats()
            self.assertEqual(mine["name"], member.name)
            self.assertEqual(mine["id"], ids[member.name])
            state = "StateLeader" if member is leader else "StateFollower"
            self.assertEqual(mine["state"], state)
            self.assertIn("getsSuccess", await client.store_stats())
            stats = await client.leader_stats()
            self.assertEqual(stats["leader"], ids[leader.name])
            followers = {ids[m.name] for m in self.cluster.members if m is not leader}
            self.assertEqual(set(stats["followers"]), followers)

    async def test_version_machines_raw(self) -> None:
        """
        version(), machines() and raw GET/PUT answer as etcd does.
        """
        version = await self.client.version()
        self.assertTrue(version["etcdserver"].startswith("3."))
        self.assertIn("etcdcluster", version)
        self.assertEqual(sorted(await self.client.machines()), sorted(self.cluster.client_urls))
        put = await self.client.raw("PUT", "/v2/keys/raw/a", body={"value": "x y"})
        self.assertEqual((put.status, put.body["node"]["value"]), (201, "x y"))
        self.assertIn("x-etcd-index", put.headers)
        got = await self.client.raw("GET", "/v2/keys/raw/a", {"quorum": True})
        self.assertEqual((got.status, got.body["node"]["value"]), (200, "x y"))
        self.assertEqual(await self.client.get_value("raw/a"), "x y")
        missing = await self.client.raw("GET", "/v2/keys/raw/none")
        self.assertEqual((missing.status, missing.body["errorCode"]), (404, 100))
        health = await self.client.raw("GET", "/health")
        self.assertEqual((health.status, health.body), (200, '{"health":"true"}'))

    async def test_health_and_status_after_losing_quorum(self) -> None:
        """
        health() is True, then False once two of three members are stopped; the status shows it.
        """
        self.assertIs(await self.client.health(), True)
        status = await self.client.cluster_status()
        self.assertTrue(status.healthy)
        self.assertEqual(status.reachable, 3)
        self.assertIsNotNone(status.leader)
        self.assertIn("healthy", str(status))
        survivor, *stopped = self.cluster.members
        for member in stopped:
            await member.stop()

        async def unhealthy() -> bool:
            return not await self.client.health()

        await eventually(unhealthy, deadline=60.0, every=0.5)
        status = await self.client.cluster_status()
        self.assertFalse(status.healthy)
        self.assertEqual(
            {m.member.name: m.reachable for m in status.members},
            {survivor.name: True, **{m.name: False for m in stopped}},
        )
        self.assertIn("UNHEALTHY", str(status))

    async def run_example(self, name: str) -> str:
        """
        Run one of the examples against the cluster; it must exit 0.
        """
        env = dict(os.environ, PYTHONPATH=ROOT)
        env["TXETCD2_ENDPOINTS"] = ",".join(self.cluster.client_urls)
        out: bytes
        err: bytes
        code: int
        out, err, code = await getProcessOutputAndValue(
            sys.executable, [os.path.join(ROOT, "examples", name)], env=env, path=ROOT
        )
        self.assertEqual(code, 0, err.decode())
        return out.decode()

    async def test_examples(self) -> None:
        """
        examples/admin.py runs every call against the cluster; examples/status.py prints it.
        """
        status = await self.run_example("status.py")
        self.assertIn("etcd cluster: healthy", status)
        for member in self.cluster.members:
            self.assertIn(member.name, status)
        self.assertEqual(status.count("LEADER"), 1)
        text = await self.run_example("admin.py")
        for expected in [
            "etcd cluster: healthy",
            "version: {'etcdserver'",
            "healthy: True",
            "leader: Member(",
            "raw PUT: 20",
            "raw GET: 200 hello",
            "added: Member(",
            "removed:",
            "members now: 3",
        ]:
            self.assertIn(expected, text)


class V2DisabledTests(EtcdTestCase):
    """
    A member started without the v2 API.
    """

    async def _start(self) -> None:
        self.cluster = await start_etcd(self, 1, reactor=reactor, enable_v2=False)
        self.client = self.make_client()

    async def test_every_v2_call_says_disabled(self) -> None:
        """
        Keys, members and stats calls raise EtcdV2Disabled with the server version and the fix.
        """
        calls: dict[str, Callable[[], Deferred[Any]]] = {
            "get": lambda: self.client.get("a"),
            "set": lambda: self.client.set("a", "1"),
            "delete": lambda: self.client.delete("a"),
            "members": self.client.members,
            "leader": self.client.leader,
            "remove_member": lambda: self.client.remove_member("1234"),
            "self_stats": self.client.self_stats,
            "store_stats": self.client.store_stats,
            "leader_stats": self.client.leader_stats,
            "machines": self.client.machines,
        }
        for name, call in calls.items():
            try:
                await call()
            except EtcdV2Disabled as e:
                self.assertEqual(e.server_version, (await self.client.version())["etcdserver"])
                self.assertIn("--enable-v2=true", str(e))
            except KeyNotFound:
                self.fail(f"{name}() reported a missing key instead of the v2 API being off")
            else:
                self.fail(f"{name}() did not raise EtcdV2Disabled")

    async def test_version_and_health_still_answer(self) -> None:
        """
        version() and health() do not need the v2 API.
        """
        self.assertTrue((await self.client.version())["etcdserver"].startswith("3."))
        self.assertIs(await self.client.health(), True)
