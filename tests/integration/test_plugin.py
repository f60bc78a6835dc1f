"""
The ``etcd-watch`` twistd plugin as a real process against real etcd, and as an installed wheel.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal as signal_module
import sys
import sysconfig
import zipfile

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.integration._processes import (
    CHECKOUT,
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


class WheelTests(TestCase):
    """
    The plugin ships in the wheel and twistd finds it after installing it into a fresh venv.
    """

    timeout = 600

    async def test_wheel_lists_plugin(self) -> None:
        """A wheel built from the checkout, installed into a clean venv, lists etcd-watch."""
        work = os.path.abspath(self.mktemp())
        source = os.path.join(work, "source")
        # Build from a copy: setuptools writes build/ and *.egg-info/ into the tree it builds.
        for name in ("setup.cfg", "pyproject.toml", "README.rst"):
            os.makedirs(source, exist_ok=True)
            shutil.copy(os.path.join(CHECKOUT, name), source)
        for name in ("txetcd2", "twisted"):
            shutil.copytree(
                os.path.join(CHECKOUT, name),
                os.path.join(source, name),
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache"),
            )
        build = spawn(
            self,
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work, source],
            dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"),
            cwd=work,
        )
        self.assertEqual(await wait_ended(build, "pip wheel", deadline=300), 0, build.describe())
        [wheel] = glob.glob(os.path.join(work, "txetcd2-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        self.assertIn("twisted/plugins/txetcd2_plugin.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)

        venv = os.path.join(work, "venv")
        made = spawn(self, [sys.executable, "-m", "venv", "--without-pip", venv], cwd=work)
        self.assertEqual(await wait_ended(made, "venv creation", deadline=120), 0, made.describe())
        python = os.path.join(venv, "bin", "python")
        # The dependencies come from this interpreter's site-packages, so no download is needed;
        # txetcd2 itself is not there (only in the checkout, which is not on the new venv's path).
        site = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))[0]
        with open(os.path.join(site, "deps.pth"), "w") as f:
            f.write(sysconfig.get_paths()["purelib"] + "\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        install = spawn(
            self,
            [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
             "--no-index", "--quiet", wheel],
            env,
            cwd=work,
        )  # fmt: skip
        self.assertEqual(await wait_ended(install, "pip install", deadline=300), 0,
                         install.describe())  # fmt: skip
        helper = spawn(
            self,
            [python, "-c", "from twisted.scripts.twistd import run; run()", "--help"],
            env,
            cwd=work,
        )
        await wait_ended(helper, "twistd --help", deadline=120)
        self.assertIn(b"etcd-watch", helper.out, helper.describe())
        where = spawn(
            self, [python, "-c", "import txetcd2; print(txetcd2.__file__)"], env, cwd=work
        )
        await wait_ended(where, "import txetcd2", deadline=60)
        self.assertTrue(where.out.decode().strip().startswith(site), where.describe())
