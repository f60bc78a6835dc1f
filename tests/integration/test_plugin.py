"""
The ``etcd-watch`` twistd plugin as a real process against real etcd, and as installed by
``make venv``, ``pip install -e .`` and from a wheel.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal as signal_module
import zipfile

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

import txetcd2
from tests.integration._install import (
    check_plugin,
    clean_env,
    copy_checkout,
    distributions,
    make_venv,
    pip_install,
    run,
    twistd,
)
from tests.integration._processes import (
    TWISTD,
    checkout_env,
    spawn,
    stopped_by,
    wait_ended,
    wait_until,
)
from tests.integration._support import EtcdTestCase
from txetcd2 import EtcdClient, EtcdConnectionError
from txetcd2.testing import start_etcd


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class WatchProcessTests(EtcdTestCase):
    """
    ``twistd -n etcd-watch`` prints each change as a JSON line and stops cleanly on a signal.
    """

    async def watch_writes(self, signal: str, writes: int) -> None:
        start = (await self.client.get("/")).etcd_index + 1
        log = os.path.abspath(self.mktemp())
        child = spawn(
            self,
            [
                *TWISTD, "-n", "--pidfile=", "--logfile", log, "etcd-watch",
                "--endpoints", ",".join(self.cluster.client_urls), "--prefix", "/plugin",
                "--recursive", "--index", str(start),
            ],
        )  # fmt: skip
        for i in range(writes):
            await self.client.set(f"/plugin/k{i:02}", f"v{i}")
        await wait_until(lambda: len(child.lines()) >= writes, child, f"{writes} JSON lines")
        events = [json.loads(line) for line in child.lines()]
        self.assertEqual(
            [(e["action"], e["key"], e["value"]) for e in events],
            [("set", f"/plugin/k{i:02}", f"v{i}") for i in range(writes)],
        )
        indexes = [e["modified_index"] for e in events]
        self.assertEqual(indexes, sorted(indexes))
        self.assertEqual(len(set(indexes)), writes)

        child.signal(signal)
        await wait_ended(child, f"SIG{signal}")
        self.assertTrue(
            stopped_by(child, getattr(signal_module, f"SIG{signal}")), child.describe()
        )
        text = read(log)
        self.assertIn(f"stopped watching /plugin after {writes} events", text)
        self.assertIn("Server Shut Down", text)
        self.assertNotIn("Traceback", text)

    async def test_twenty_writes_then_sigterm(self) -> None:
        """20 writes give 20 JSON lines in order; SIGTERM stops the watcher and exits 0."""
        await self.watch_writes("TERM", 20)

    async def test_sigint(self) -> None:
        """SIGINT (Ctrl-C) stops it cleanly too."""
        await self.watch_writes("INT", 3)

    async def test_text_format(self) -> None:
        """--format text prints a readable line per event."""
        start = (await self.client.get("/")).etcd_index + 1
        child = spawn(
            self,
            [
                *TWISTD, "-n", "--pidfile=", "--logfile", os.path.abspath(self.mktemp()),
                "etcd-watch", "--endpoints", self.cluster.client_urls[0], "--prefix", "/text/key",
                "--index", str(start), "--format", "text",
            ],
        )  # fmt: skip
        first = await self.client.set("/text/key", "one")
        await self.client.set("/text/key", "two")
        await wait_until(lambda: len(child.lines()) >= 2, child, "2 text lines")
        self.assertEqual(
            child.lines()[:2],
            [
                f'[{first.index}] set /text/key = "one"',
                f'[{first.index + 1}] set /text/key = "two" (was "one")',
            ],
        )
        child.signal("TERM")
        await wait_ended(child, "SIGTERM")
        self.assertTrue(stopped_by(child, signal_module.SIGTERM), child.describe())


class ReconnectLogTests(TestCase):
    """
    What ``twistd etcd-watch`` logs while etcd is unreachable: one line per failed reconnect.
    """

    timeout = 120

    async def test_one_line_per_reconnect(self) -> None:
        """Each failed reconnect of the plugin logs exactly one line, saying what failed,
        where, and when it retries (delays rounded); no factory lines, no Failure reprs."""
        from tests.integration.test_failover import dead_endpoint

        log = os.path.abspath(self.mktemp())
        child = spawn(
            self,
            [
                *TWISTD, "-n", "--pidfile=", "--logfile", log, "etcd-watch",
                "--endpoints", dead_endpoint(), "--prefix", "/plugin",
            ],
        )  # fmt: skip

        def failures() -> list[str]:
            return [line for line in read(log).splitlines() if "failed at" in line]

        await wait_until(lambda: len(failures()) >= 3, child, "3 failed reconnects", 60.0)
        child.signal("TERM")
        await wait_ended(child, "SIGTERM")
        text = read(log)
        self.assertNotIn("Starting factory", text)
        self.assertNotIn("Stopping factory", text)
        self.assertNotIn("<twisted.python.failure.Failure", text)
        for line in failures():
            self.assertIsNotNone(re.search(r"in \d+\.\d{2}s", line), line)
        # Between the first and the third failure, nothing but the failures themselves.
        lines = text.splitlines()
        marks = [i for i, line in enumerate(lines) if "failed at" in line]
        between = lines[marks[0] : marks[2] + 1]
        self.assertEqual([line for line in between if "failed at" not in line], [], text)


class CommandLineTests(TestCase):
    """
    Mistakes on the command line give a usage message, never a traceback.
    """

    timeout = 120

    async def run_twistd(self, *args: str, **env: str) -> tuple[int | None, str]:
        child = spawn(
            self, [*TWISTD, "-n", "--pidfile=", "etcd-watch", *args], checkout_env(**env)
        )
        code = await wait_ended(child, "a usage error", deadline=60)
        return code, (child.out + child.err).decode("utf-8", "replace")

    async def test_bad_option(self) -> None:
        """A bad --index is reported as a usage error with the option's name."""
        code, output = await self.run_twistd("--endpoints", "http://127.0.0.1:1", "--prefix", "/x",
                                             "--index", "soon")  # fmt: skip
        self.assertNotEqual(code, 0)
        self.assertIn("--index must be a whole number", output)
        self.assertNotIn("Traceback", output)

    async def test_embedded_without_etcd(self) -> None:
        """--embedded without an etcd binary says how to install one."""
        code, output = await self.run_twistd(
            "--embedded", "--prefix", "/x", TXETCD2_ETCD="/nonexistent/etcd"
        )
        self.assertNotEqual(code, 0)
        self.assertIn("apt-get install -y etcd-server", output)
        self.assertNotIn("Traceback", output)


class FatalErrorTests(TestCase):
    """
    An error that retrying cannot fix makes ``twistd etcd-watch`` exit non-zero, saying why.
    """

    timeout = 120

    async def test_v2_disabled(self) -> None:
        """Against an etcd started without --enable-v2 the plugin exits 1 saying v2 is disabled."""
        cluster = await start_etcd(self, 1, reactor=reactor, enable_v2=False)
        log = os.path.abspath(self.mktemp())
        child = spawn(
            self,
            [
                *TWISTD, "-n", "--pidfile=", "--logfile", log, "etcd-watch",
                "--endpoints", cluster.client_urls[0], "--prefix", "/x",
            ],
        )  # fmt: skip
        code = await wait_ended(child, "the exit after the fatal error", deadline=60)
        self.assertEqual(code, 1, child.describe())
        err = child.err.decode("utf-8", "replace")
        self.assertIn("etcd-watch: the watch of /x gave up: the v2 API is disabled", err)
        self.assertIn("--enable-v2=true", err)
        text = read(log)
        self.assertIn("the v2 API is disabled", text)
        self.assertIn("Server Shut Down", text)
        self.assertEqual(child.lines(), [])


class EmbeddedTests(TestCase):
    """
    ``--embedded`` runs a private etcd for the life of the service.
    """

    timeout = 120

    async def test_embedded(self) -> None:
        """Without any etcd running, --embedded starts one, watches it and removes it on exit."""
        log = os.path.abspath(self.mktemp())
        child = spawn(
            self,
            [
                *TWISTD, "-n", "--pidfile=", "--logfile", log, "etcd-watch", "--embedded",
                "--prefix", "/emb", "--recursive", "--index", "1",
            ],
        )  # fmt: skip
        found: list[str] = []

        def started() -> bool:
            found[:] = re.findall(r"embedded etcd running at (http://[0-9.:]+)", read(log))
            return bool(found)

        await wait_until(started, child, "embedded etcd")
        url = found[0]
        client = EtcdClient(url, reactor=reactor, timeout=5.0)
        self.addCleanup(client.close)
        await client.set("/emb/a", "1")
        await client.delete("/emb/a")
        await wait_until(lambda: len(child.lines()) >= 2, child, "2 JSON lines")
        self.assertEqual(
            [(e["action"], e["key"]) for e in map(json.loads, child.lines())],
            [("set", "/emb/a"), ("delete", "/emb/a")],
        )
        child.signal("TERM")
        await wait_ended(child, "SIGTERM")
        self.assertTrue(stopped_by(child, signal_module.SIGTERM), child.describe())
        with self.assertRaises(EtcdConnectionError):
            await client.get("/")


class InstalledPluginTests(TestCase):
    """
    ``twistd`` finds ``etcd-watch`` however txetcd2 is installed: in the README's virtualenv
    (``make venv``), with ``pip install -e .``, and from a wheel, each in a clean virtualenv.
    """

    timeout = 600

    def workdir(self) -> str:
        work = os.path.abspath(str(self.mktemp()))
        os.makedirs(work)
        return work

    async def test_make_venv(self) -> None:
        """After the Makefile's install step, .venv's twistd lists etcd-watch and runs it."""
        work = self.workdir()
        source = copy_checkout(os.path.join(work, "source"))
        python = await make_venv(self, os.path.join(source, ".venv"))
        await run(self, ["make", "-C", source, "venv"], work, "make venv")
        await check_plugin(self, python, work)
        where = await run(self, [python, "-c", "import txetcd2; print(txetcd2.__file__)"], work,
                          "import txetcd2")  # fmt: skip
        self.assertEqual(where.strip(), os.path.join(source, "txetcd2", "__init__.py"))

        log = os.path.join(work, "twistd.log")
        argv = [*twistd(python), "-n", "--pidfile=", "--logfile", log, "etcd-watch",
                "--embedded", "--prefix", "/venv", "--index", "1"]  # fmt: skip
        child = spawn(self, argv, clean_env(), cwd=work)
        found: list[str] = []

        def started() -> bool:
            found[:] = re.findall(r"embedded etcd running at (http://[0-9.:]+)", read(log))
            return bool(found)

        await wait_until(started, child, "embedded etcd")
        client = EtcdClient(found[0], reactor=reactor, timeout=5.0)
        self.addCleanup(client.close)
        await client.set("/venv", "seen")
        await wait_until(lambda: len(child.lines()) >= 1, child, "a JSON line")
        self.assertEqual(
            [(e["action"], e["key"], e["value"]) for e in map(json.loads, child.lines())],
            [("set", "/venv", "seen")],
        )
        child.signal("TERM")
        await wait_ended(child, "SIGTERM")
        self.assertTrue(stopped_by(child, signal_module.SIGTERM), child.describe())

    async def test_editable(self) -> None:
        """After a plain ``pip install -e .``, twistd lists etcd-watch and shows our version."""
        work = self.workdir()
        source = copy_checkout(os.path.join(work, "source"))
        python = await make_venv(self, os.path.join(work, "venv"))
        await pip_install(self, python, "-e", source)
        version = await check_plugin(self, python, work)
        self.assertEqual(version, txetcd2.__version__)
        where = await run(self, [python, "-c", "import txetcd2; print(txetcd2.__file__)"], work,
                          "import txetcd2")  # fmt: skip
        self.assertEqual(where.strip(), os.path.join(source, "txetcd2", "__init__.py"))

    async def test_wheel(self) -> None:
        """A wheel built from the checkout, installed into a clean venv, lists etcd-watch."""
        work = self.workdir()
        _, _, wheel = await distributions(self)
        names = zipfile.ZipFile(wheel).namelist()
        self.assertIn("twisted/plugins/txetcd2_plugin.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertNotIn("twisted/plugins/dropin.cache", names)

        python = await make_venv(self, os.path.join(work, "venv"))
        await pip_install(self, python, "--no-index", wheel)
        self.assertEqual(await check_plugin(self, python, work), txetcd2.__version__)
        where = await run(self, [python, "-c", "import txetcd2; print(txetcd2.__file__)"], work,
                          "import txetcd2")  # fmt: skip
        site = glob.glob(os.path.join(work, "venv", "lib", "python3*", "site-packages"))[0]
        self.assertEqual(where.strip(), os.path.join(site, "txetcd2", "__init__.py"))
