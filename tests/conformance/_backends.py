"""
The back ends the conformance scenarios run on: a real etcd (3.4 or 3.5) started by the
harness, or a :class:`~txetcd2.testing.MemoryEtcd` driven by a clock.

A scenario never sleeps: it waits with :meth:`Backend.until` / :meth:`Backend.wait`, which poll
on the reactor for real etcd and move the clock for the in-memory one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from txetcd2 import EtcdClient
from txetcd2._transport.agent import BytesProducer
from txetcd2._transport.exchange import read_body
from txetcd2.testing import MemoryEtcd, find_etcd_binary, start_etcd

_T = TypeVar("_T")

#: Generous: the machine is small and shared.
DEADLINE = 120.0


class Backend(TestCase):
    """
    A test case with a back end started before each test and a client on it
    (:attr:`client`); subclasses say which back end.
    """

    timeout = 600
    #: how often polls look again, in (real or clock) seconds
    step = 0.05

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._set_up())

    async def _set_up(self) -> None:
        self.urls = await self.start_backend(1, enable_v2=True)
        self.client = self.make_client()

    async def start_backend(self, size: int, enable_v2: bool) -> list[str]:
        """
        Start a back end of ``size`` members (stopped at cleanup).

        :returns: the members' URLs.
        """
        raise NotImplementedError

    def make_client(self, urls: list[str] | None = None, **options: Any) -> EtcdClient:
        """
        A client on the back end (default: on :attr:`urls`), closed at cleanup.
        """
        raise NotImplementedError

    @property
    def clock(self) -> Any:
        """
        The clients' reactor (its delayed calls are the clients' timers).
        """
        raise NotImplementedError

    async def tick(self) -> None:
        """
        Let :attr:`step` seconds pass.
        """
        raise NotImplementedError

    async def until(
        self, condition: Callable[[], bool], what: str, deadline: float = DEADLINE
    ) -> None:
        """
        Wait until ``condition()`` holds, or fail after ``deadline`` seconds.
        """
        end = self.clock.seconds() + deadline
        while not condition():
            if self.clock.seconds() > end:
                raise AssertionError(f"timed out waiting for {what}")
            await self.tick()

    async def eventually(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        """
        Wait until the async ``check()`` returns true, or fail after :data:`DEADLINE` seconds.
        """
        end = self.clock.seconds() + DEADLINE
        while not await check():
            if self.clock.seconds() > end:
                raise AssertionError(f"timed out waiting for {what}")
            await self.tick()

    async def wait(self, d: Deferred[_T], what: str = "the answer") -> _T:
        """
        Wait for ``d`` to fire (moving time on), then give its result.
        """
        await self.until(lambda: d.called, what)
        return await d

    async def watchers(self, at_least: int, what: str = "the watch") -> None:
        """
        Wait until the store counts at least ``at_least`` watchers (``/v2/stats/store``).
        """

        async def enough() -> bool:
            stats = (await self.raw("GET", "/v2/stats/store")).json()
            return bool(stats["watchers"] >= at_least)

        await self.eventually(enough, what)

    @property
    def agent(self) -> IAgent:
        """
        A plain HTTP agent reaching the back end (for raw requests).
        """
        raise NotImplementedError

    async def raw(
        self, method: str, path: str, form: dict[str, str] | None = None, url: str | None = None
    ) -> Raw:
        """
        Send one raw request (``form``: a URL-encoded body) and read the whole answer.
        """
        return await self.wait(self.send(method, path, form, url))

    def send(
        self, method: str, path: str, form: dict[str, str] | None = None, url: str | None = None
    ) -> Deferred[Raw]:
        """
        Send one raw request; the Deferred fires with the whole answer (it never waits by
        itself: use it for requests left pending while the test goes on).
        """
        body = None if form is None else BytesProducer(urlencode(form).encode("ascii"))
        headers = Headers()
        if form is not None:
            headers.addRawHeader(b"content-type", b"application/x-www-form-urlencoded")
        target = ((url or self.urls[0]) + path).encode("ascii")

        def answered(response: IResponse) -> Deferred[Raw]:
            raw = response.headers.getAllRawHeaders()
            found = {k.decode().lower(): v[0].decode() for k, v in raw}
            return read_body(response).addCallback(lambda data: Raw(response.code, found, data))

        sent = self.agent.request(method.encode(), target, headers, body)
        return sent.addCallback(answered)

    async def open_stream(self, path: str) -> Lines:
        """
        Open a request whose body stays open (a stream); aborted at cleanup.
        """
        target = (self.urls[0] + path).encode("ascii")
        response = await self.wait(self.agent.request(b"GET", target, Headers(), None))
        lines = Lines(response.code, response.headers.getRawHeaders(b"x-etcd-index", [b"0"]))
        response.deliverBody(lines)
        self.addCleanup(lines.abort)
        return lines


@attrs.frozen
class Raw:
    """
    A raw answer: status, headers (lower-case names, first values) and body.
    """

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Lines(Protocol):
    """
    Collects a streamed body's lines.
    """

    def __init__(self, status: int, index: list[bytes]) -> None:
        self.status = status
        self.etcd_index = int(index[0])
        self.lines: list[Any] = []
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(json.loads(line) for line in complete if line.strip())

    def abort(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            getattr(transport, "abortConnection", transport.loseConnection)()


class RealEtcd(Backend):
    """
    Real etcd members of :attr:`etcd_version`, started by the harness.
    """

    etcd_version = "3.4"

    async def start_backend(self, size: int, enable_v2: bool) -> list[str]:
        binary = find_etcd_binary(self.etcd_version)
        cluster = await start_etcd(self, size, reactor=reactor, binary=binary, enable_v2=enable_v2)
        return cluster.client_urls

    def make_client(self, urls: list[str] | None = None, **options: Any) -> EtcdClient:
        options.setdefault("timeout", 15.0)
        client = EtcdClient(self.urls if urls is None else urls, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client

    @property
    def clock(self) -> Any:
        return reactor

    async def tick(self) -> None:
        await deferLater(reactor, self.step)

    @property
    def agent(self) -> IAgent:
        if not hasattr(self, "_agent"):
            pool = HTTPConnectionPool(reactor, persistent=False)
            self._agent = Agent(reactor, pool=pool)
        return self._agent


class InMemoryEtcd(Backend):
    """
    A :class:`~txetcd2.testing.MemoryEtcd` on a :class:`~twisted.internet.task.Clock`; the
    test fails if a connection is left open at the end.
    """

    async def start_backend(self, size: int, enable_v2: bool) -> list[str]:
        if not hasattr(self, "_clock"):
            self._clock = Clock()
            self._etcds: dict[str, MemoryEtcd] = {}
        etcd = MemoryEtcd(self._clock, members=size, enable_v2=enable_v2)
        self.etcd = etcd
        for url in etcd.urls:
            self._etcds[url] = etcd
        self.addCleanup(self._no_connection_left, etcd)
        return etcd.urls

    def _no_connection_left(self, etcd: MemoryEtcd) -> None:
        self.assertEqual(etcd.open_connections(), [])
        etcd.close()

    def make_client(self, urls: list[str] | None = None, **options: Any) -> EtcdClient:
        urls = self.urls if urls is None else urls
        etcd = self._etcds[urls[0]]
        client = etcd.client(endpoints=urls, **options)

        def close() -> Deferred[None]:
            closed = client.close()
            etcd.kick()
            self._clock.advance(0)
            return closed

        self.addCleanup(close)
        return client

    @property
    def clock(self) -> Any:
        return self._clock

    async def tick(self) -> None:
        self._clock.advance(self.step)

    @property
    def agent(self) -> IAgent:
        return self.etcd.agent
