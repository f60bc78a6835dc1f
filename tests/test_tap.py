"""
Tests for the ``etcd-watch`` twistd plugin: discovery, options and the service.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import IService, IServiceCollection
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import twisted.plugins
from txetcd2._tap import command as _tap
from txetcd2._tap.command import Options, makeService
from txetcd2._tap.lines import json_line, text_line
from txetcd2._tap.service import FixedEndpoints, WatchService
from txetcd2._wire.errors import EtcdV2Disabled
from txetcd2._wire.models import EtcdNode, EtcdResponse


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def event(
    action: str, key: str, value: str | None, index: int, prev: str | None = None
) -> EtcdResponse:
    prev_node = EtcdNode(key, prev, created_index=1, modified_index=index - 1) if prev else None
    node = EtcdNode(key, value, created_index=1, modified_index=index)
    return EtcdResponse(action, node, prev_node, etcd_index=index - 1)


class FakeWatcher:
    """
    Records what the service asks of a Watcher, and lets the test fire its notifications.
    """

    def __init__(self, key: str, index: int | None, recursive: bool) -> None:
        self.key = key
        self.index = index
        self.recursive = recursive
        self.callbacks: dict[str, list[Callable[..., object]]] = {}
        self.started = False
        self.stopping: Deferred[None] | None = None

    def on(self, name: str, callback: Callable[..., object]) -> None:
        self.callbacks.setdefault(name, []).append(callback)

    def fire(self, name: str, *args: object) -> None:
        for callback in self.callbacks.get(name, []):
            callback(*args)

    def start(self) -> None:
        self.started = True

    def stop(self) -> Deferred[None]:
        self.stopping = Deferred()
        self.fire("stop")
        return self.stopping


class FakeClient:
    """
    A client that builds a :class:`FakeWatcher` and records ``close``.
    """

    def __init__(self, endpoints: Sequence[str]) -> None:
        self.endpoints = list(endpoints)
        self.watchers: list[FakeWatcher] = []
        self.closed = False

    def watcher(self, key: str, *, index: int | None = None, recursive: bool = False) -> Any:
        watcher = FakeWatcher(key, index, recursive)
        self.watchers.append(watcher)
        return watcher

    def close(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)


class PluginTests(SynchronousTestCase):
    """
    The dropin is found and points at the real module.
    """

    def test_found_by_getPlugins(self) -> None:
        """getPlugins(IServiceMaker) lists a plugin with tapname etcd-watch."""
        from twisted.application.service import IServiceMaker

        makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
        self.assertIn("etcd-watch", makers)
        maker = makers["etcd-watch"]
        self.assertTrue(verifyObject(IPlugin, maker))
        self.assertIs(maker.options, Options)
        self.assertEqual(maker.module, "txetcd2._tap")  # type: ignore[attr-defined]


class OptionsTests(SynchronousTestCase):
    """
    Options are parsed, normalized, and checked together.
    """

    def test_minimal(self) -> None:
        """Endpoints and a prefix are enough; the format defaults to JSON."""
        options = parse("--endpoints", "http://a:2379,http://b:2379", "--prefix", "app/")
        self.assertEqual(options["endpoints"], ["http://a:2379", "http://b:2379"])
        self.assertEqual(options["prefix"], "/app")
        self.assertEqual(options["format"], "json")
        self.assertFalse(options["recursive"])
        self.assertIsNone(options["index"])
        self.assertEqual(options["client_options"], {})

    def test_all_plain_options(self) -> None:
        """--recursive, --index and --format are parsed."""
        options = parse(
            "-e", "http://a:2379", "-p", "/x", "--recursive", "--index", "42", "--format", "text"
        )
        self.assertTrue(options["recursive"])
        self.assertEqual(options["index"], 42)
        self.assertEqual(options["format"], "text")

    def test_bad_options(self) -> None:
        """Each bad option, or bad combination, is a UsageError with a message."""
        bad = [
            ["--prefix", "/x"],
            ["--endpoints", "http://a:2379"],
            ["--endpoints", "ftp://a", "--prefix", "/x"],
            ["--endpoints", "http://a:2379", "--prefix", "/a/../b"],
            ["--endpoints", "http://a:2379", "--prefix", "/x", "--index", "x"],
            ["--endpoints", "http://a:2379", "--prefix", "/x", "--index", "0"],
            ["--endpoints", "http://a:2379", "--prefix", "/x", "--format", "xml"],
            ["--endpoints", "http://a:2379", "--prefix", "/x", "--key", "k.pem"],
            ["--endpoints", "http://a:2379", "--prefix", "/x", "--username", "u"],
            ["--endpoints", "http://a:2379", "--prefix", "/x", "--ca", "/nonexistent/ca.pem"],
            ["--endpoints", "http://a:2379", "--prefix", "/x", "--embedded"],
            ["--endpoints", "http://a:2379", "--prefix", "/x", "--no-such-option"],
        ]
        for argv in bad:
            error = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertTrue(str(error), argv)

    def test_password_file(self) -> None:
        """The password is the first line of --password-file, passed on with the user name."""
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.remove, path)
        with os.fdopen(fd, "w") as f:
            f.write("s3cret\n")
        built: list[dict[str, object]] = []

        class Recording:
            def __init__(self, endpoints: object, **kwargs: object) -> None:
                built.append(kwargs)

            def close(self) -> None:
                pass

        self.patch(_tap, "_client_accepts", lambda name: True)
        self.patch(_tap, "EtcdClient", Recording)
        options = parse(
            "-e", "http://a:2379", "-p", "/x", "--username", "u", "--password-file", path
        )
        self.assertEqual(options["client_options"], {"username": "u", "password": "s3cret"})
        self.assertEqual(built[0]["password"], "s3cret")

    def test_client_checks(self) -> None:
        """The client's own checks of the options are usage errors, with its message."""

        def refuse(*args: object, **kwargs: object) -> None:
            raise ValueError("basic auth over http:// needs https")

        fd, path = tempfile.mkstemp()
        self.addCleanup(os.remove, path)
        os.close(fd)
        self.patch(_tap, "_client_accepts", lambda name: True)
        self.patch(_tap, "EtcdClient", refuse)
        error = self.assertRaises(
            usage.UsageError,
            parse,
            *["-e", "http://a:2379", "-p", "/x", "--username", "u", "--password-file", path],
        )
        self.assertEqual(str(error), "basic auth over http:// needs https")

    def test_security_unsupported(self) -> None:
        """When EtcdClient has no such option, asking for it is a UsageError, not a crash."""
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.remove, path)
        os.close(fd)
        self.patch(_tap, "_client_accepts", lambda name: False)
        error = self.assertRaises(
            usage.UsageError, parse, "-e", "http://a:2379", "-p", "/x", "--ca", path
        )
        self.assertIn("'ca'", str(error))

    def test_embedded_without_etcd(self) -> None:
        """--embedded without an etcd binary says how to install one."""
        self.patch(os, "environ", {**os.environ, "TXETCD2_ETCD": "/nonexistent/etcd"})
        error = self.assertRaises(usage.UsageError, parse, "--embedded", "-p", "/x")
        self.assertIn("apt-get install", str(error))


class MakeServiceTests(SynchronousTestCase):
    """
    makeService builds an IService tree around a WatchService.
    """

    def test_returns_service(self) -> None:
        """makeService returns a service collection holding the named watch service."""
        service = makeService(parse("-e", "http://a:2379", "-p", "/x"), Clock(), io.StringIO())
        self.assertTrue(verifyObject(IService, service))
        self.assertTrue(IServiceCollection.providedBy(service))
        watch = IServiceCollection(service).getServiceNamed("etcd-watch")
        self.assertIsInstance(watch, WatchService)

    def test_fatal_exits_non_zero(self) -> None:
        """When watching cannot go on, the reason goes to stderr and the exit status is 1."""
        err = io.StringIO()
        statuses: list[int] = []
        service = makeService(
            parse("-e", "http://a:2379", "-p", "/x"),
            Clock(),
            io.StringIO(),
            err=err,
            exit_status=statuses.append,
        )
        watch = IServiceCollection(service).getServiceNamed("etcd-watch")
        assert isinstance(watch, WatchService)
        watch._watcher_stopped(Failure(EtcdV2Disabled("http://a:2379", "3.4.23")))
        self.assertEqual(statuses, [1])
        message = "etcd-watch: the watch of /x gave up: the v2 API is disabled"
        self.assertIn(message, err.getvalue())


class WatchServiceTests(SynchronousTestCase):
    """
    The service writes one line per event and stops everything it started.
    """

    def setUp(self) -> None:
        self.lines: list[str] = []
        self.clients: list[FakeClient] = []
        self.fatal: list[bool] = []

    def service(self, formatter: Callable[[EtcdResponse], str] = json_line) -> WatchService:
        def client_factory(endpoints: Sequence[str]) -> FakeClient:
            client = FakeClient(endpoints)
            self.clients.append(client)
            return client

        return WatchService(
            FixedEndpoints(["http://a:2379"]),
            client_factory,
            key="/app",
            recursive=True,
            index=7,
            formatter=formatter,
            write_line=self.lines.append,
            on_fatal=lambda: self.fatal.append(True),
        )

    def test_start_builds_watcher(self) -> None:
        """Starting builds a client on the endpoints and starts a watcher on the key."""
        service = self.service()
        service.startService()
        [client] = self.clients
        self.assertEqual(client.endpoints, ["http://a:2379"])
        [watcher] = client.watchers
        self.assertEqual((watcher.key, watcher.index, watcher.recursive), ("/app", 7, True))
        self.assertTrue(watcher.started)

    def test_json_lines(self) -> None:
        """Each change is one JSON line: action, key, value, indexes, previous value."""
        service = self.service()
        service.startService()
        watcher = self.clients[0].watchers[0]
        watcher.fire("change", event("set", "/app/a", "1", 5))
        watcher.fire("change", event("update", "/app/a", "2", 6, prev="1"))
        self.assertEqual(
            [json.loads(line) for line in self.lines],
            [
                {
                    "action": "set",
                    "key": "/app/a",
                    "value": "1",
                    "dir": False,
                    "ttl": None,
                    "created_index": 1,
                    "modified_index": 5,
                    "prev_value": None,
                    "prev_modified_index": None,
                },
                {
                    "action": "update",
                    "key": "/app/a",
                    "value": "2",
                    "dir": False,
                    "ttl": None,
                    "created_index": 1,
                    "modified_index": 6,
                    "prev_value": "1",
                    "prev_modified_index": 5,
                },
            ],
        )
        self.assertEqual(service.events, 2)

    def test_text_lines(self) -> None:
        """The text format shows index, action, key, value and the previous value."""
        service = self.service(text_line)
        service.startService()
        self.clients[0].watchers[0].fire("change", event("update", "/app/a", "2", 6, prev="1"))
        self.assertEqual(self.lines, ['[6] update /app/a = "2" (was "1")'])

    def test_resync_line(self) -> None:
        """A resync is written as one line holding the current values, and logged."""
        service = self.service()
        service.startService()
        snapshot = EtcdResponse(
            "get",
            EtcdNode("/app", dir=True, nodes=(EtcdNode("/app/a", "1", modified_index=3),)),
            etcd_index=9,
        )
        self.clients[0].watchers[0].fire("resync", snapshot)
        self.assertEqual(
            json.loads(self.lines[0]),
            {"action": "resync", "key": "/app", "etcd_index": 9, "values": {"/app/a": "1"}},
        )

    def test_stop(self) -> None:
        """Stopping stops the watcher, then closes the client, and is not fatal."""
        service = self.service()
        service.startService()
        stopped = service.stopService()
        client = self.clients[0]
        watcher = client.watchers[0]
        self.assertNoResult(stopped)
        self.assertFalse(client.closed)
        assert watcher.stopping is not None
        watcher.stopping.callback(None)
        self.successResultOf(stopped)
        self.assertTrue(client.closed)
        self.assertEqual(self.fatal, [])

    def test_watcher_gives_up(self) -> None:
        """A watcher that stops by itself is fatal: the program should exit."""
        service = self.service()
        service.startService()
        self.clients[0].watchers[0].fire("stop", Failure(RuntimeError("boom")))
        self.assertEqual(self.fatal, [True])
        self.assertEqual(service.fatal_error, "the watch of /app gave up: boom")
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_start_fails(self) -> None:
        """When the members cannot be found the failure is logged and fatal."""

        class Broken(FixedEndpoints):
            def start(self) -> Deferred[Sequence[str]]:
                return Deferred.fromCoroutine(self._fail())

            async def _fail(self) -> Sequence[str]:
                raise RuntimeError("no etcd")

        service = WatchService(
            Broken([]),
            FakeClient,
            key="/app",
            recursive=False,
            index=None,
            formatter=json_line,
            write_line=self.lines.append,
            on_fatal=lambda: self.fatal.append(True),
        )
        service.startService()
        self.assertEqual(self.fatal, [True])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.successResultOf(service.stopService())
