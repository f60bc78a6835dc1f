"""
:class:`FaultProxy`: a TCP proxy on the loopback interface in front of a real
etcd member, which breaks the network on request.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from txetcd2._logs import PublicLogger


def _reset(transport: Any) -> None:
    """
    Close a TCP connection with a reset (RST) instead of a FIN.
    """
    handle = transport.getHandle()
    handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abortConnection()


class _Side(Protocol):
    """
    One end of a proxied connection: the client's (``downstream``) or the member's.
    """

    def __init__(self, pair: _Pair, downstream: bool) -> None:
        self._pair = pair
        self._downstream = downstream
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        if self._downstream:
            self._pair.down_made()
        else:
            self._pair.upstream_made(self)

    def dataReceived(self, data: bytes) -> None:
        self._pair.forward(data, to_member=self._downstream)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._pair.side_lost(self)
        self.lost.callback(None)


class _Pair:
    """
    A client connection and the connection to the member it is forwarded to.
    """

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self.down = _Side(self, downstream=True)
        self.up: _Side | None = None
        self._early: list[bytes] = []
        self._pending: set[IDelayedCall] = set()
        #: bytes sent while black-holed, held as TCP's retransmissions hold them
        self._held: list[tuple[bytes, bool]] = []
        self._connecting = False
        self.closed = False

    def down_made(self) -> None:
        proxy = self._proxy
        proxy._pairs.add(self)
        self.down.lost.addBoth(lambda _: proxy._pairs.discard(self))
        if not proxy.blackholed:
            self.connect()

    def connect(self) -> None:
        self._connecting = True
        proxy = self._proxy
        endpoint = TCP4ClientEndpoint(proxy.reactor, proxy.host, proxy.port, timeout=10)
        connecting = endpoint.connect(_OneProtocol(_Side(self, downstream=False)))

        def failed(reason: Failure) -> None:
            proxy.log.info("fault proxy: the member refused: {why}", why=reason.getErrorMessage())
            self.close()

        connecting.addErrback(failed)

    def upstream_made(self, side: _Side) -> None:
        self.up = side
        if self.closed:
            side.transport.loseConnection()  # type: ignore[union-attr]
            return
        for data in self._early:
            side.transport.write(data)  # type: ignore[union-attr]
        self._early = []

    def release(self) -> None:
        """
        After a black hole: connect to the member if that was held back, then
        deliver the held bytes, in order.
        """
        if self.closed:
            return
        if not self._connecting:
            self.connect()
        held, self._held = self._held, []
        for data, to_member in held:
            self.forward(data, to_member)

    def forward(self, data: bytes, to_member: bool) -> None:
        proxy = self._proxy
        if self.closed:
            return
        if proxy.blackholed:
            self._held.append((data, to_member))
            return
        if proxy.delay_seconds > 0:
            call: IDelayedCall

            def later() -> None:
                self._pending.discard(call)
                self._write(data, to_member)

            call = proxy.reactor.callLater(proxy.delay_seconds, later)
            self._pending.add(call)
        else:
            self._write(data, to_member)

    def _write(self, data: bytes, to_member: bool) -> None:
        if self.closed:
            return
        if not to_member:
            self.down.transport.write(data)  # type: ignore[union-attr]
        elif self.up is None:
            self._early.append(data)
        else:
            self.up.transport.write(data)  # type: ignore[union-attr]

    def side_lost(self, side: _Side) -> None:
        self.close()

    def close(self, rst: bool = False) -> None:
        """
        Close both ends (with a reset when ``rst``).
        """
        self.closed = True
        for call in list(self._pending):
            if call.active():
                call.cancel()
        self._pending.clear()
        for side in (self.down, self.up):
            transport = side.transport if side is not None else None
            if transport is None or getattr(transport, "disconnected", False):
                continue
            if rst:
                _reset(transport)
            else:
                transport.loseConnection()

    def when_lost(self) -> Deferred[Any]:
        sides = [s for s in (self.down, self.up) if s is not None and s.transport is not None]
        return gatherResults([s.lost for s in sides]) if sides else succeed(None)


class _OneProtocol(Factory):
    """
    A factory handing out one prepared protocol.
    """

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self._protocol


class _Accepting(Factory):
    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy

    def buildProtocol(self, addr: Any) -> Protocol:
        return _Pair(self._proxy).down


class FaultProxy:
    """
    A TCP proxy on ``127.0.0.1`` in front of one real etcd member, for fault
    tests: point a client at :meth:`start`'s URL, then break the path to the
    member on purpose::

        proxy = FaultProxy(reactor, "127.0.0.1", 2379)
        url = await proxy.start()
        client = EtcdClient([url, *other_members], reactor=reactor, timeout=2.0)
        ...
        proxy.cut()          # every live connection closed (FIN); rst=True: reset
        proxy.blackhole()    # accept, forward nothing either way (a paused or lost host)
        proxy.delay(0.5)     # every byte forwarded half a second late
        proxy.refuse()       # stop listening: connections refused (a dead host)
        proxy.restore()      # forward normally again (listening on the same port)
        await proxy.stop()

    :param reactor: the reactor (TCP and time).
    :param host: the member's host (loopback only: this is a test tool).
    :param port: the member's client port.
    :ivar url: the proxy's URL once started (``http://127.0.0.1:PORT``).
    """

    log = PublicLogger(namespace="txetcd2.testing.FaultProxy")

    def __init__(self, reactor: Any, host: str, port: int) -> None:
        if not isinstance(host, str) or host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"FaultProxy only proxies to the loopback interface, not {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be a TCP port number, not {port!r}")
        self.reactor = reactor
        self.host = host
        self.port = port
        self.blackholed = False
        self.delay_seconds = 0.0
        self.url: str | None = None
        self._listen_port = 0
        self._listening: IListeningPort | None = None
        self._pairs: set[_Pair] = set()
        self._stopped = False

    def __repr__(self) -> str:
        state = "blackhole" if self.blackholed else f"delay {self.delay_seconds}s"
        listening = "listening" if self._listening is not None else "refusing"
        return f"<FaultProxy {self.url} -> {self.host}:{self.port} {listening}, {state}>"

    @property
    def connections(self) -> int:
        """
        How many client connections are open through the proxy.
        """
        return len(self._pairs)

    def start(self) -> Deferred[str]:
        """
        Listen on a free loopback port.

        :returns: a Deferred firing with the URL to give clients.
        """
        self._listen()
        assert self.url is not None
        return succeed(self.url)

    def _listen(self) -> None:
        if self._listening is not None:
            return
        self._listening = self.reactor.listenTCP(
            self._listen_port, _Accepting(self), interface="127.0.0.1"
        )
        address: Any = self._listening.getHost()
        self._listen_port = address.port
        self.url = f"http://127.0.0.1:{self._listen_port}"

    def cut(self, rst: bool = False) -> None:
        """
        Close every live connection, both ends: with a FIN, or with a reset
        (RST) when ``rst``. New connections are still accepted.
        """
        self.log.info("fault proxy {url}: cut (rst={rst})", url=self.url, rst=rst)
        for pair in list(self._pairs):
            pair.close(rst=rst)

    def blackhole(self) -> None:
        """
        Forward nothing, in either direction, on live and new connections
        (which are still accepted): like a paused member or a lost route.

        As over a real network, no byte is lost: what either side sends
        meanwhile is held (TCP would retransmit it) and delivered, in order,
        by :meth:`restore`, unless the connection was closed first (by a
        side's own timeout, or :meth:`cut`).
        """
        self.log.info("fault proxy {url}: black hole", url=self.url)
        self.blackholed = True

    def delay(self, seconds: float) -> None:
        """
        Forward every byte ``seconds`` late (0: no delay).
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"seconds must be a number >= 0, not {seconds!r}")
        self.delay_seconds = float(seconds)

    def refuse(self) -> Deferred[None]:
        """
        Stop listening, so new connections are refused (live ones stay).

        :returns: a Deferred firing once the port is closed.
        """
        self.log.info("fault proxy {url}: refuse", url=self.url)
        listening, self._listening = self._listening, None
        if listening is None:
            return succeed(None)
        stopped = listening.stopListening()
        return stopped if isinstance(stopped, Deferred) else succeed(None)

    def restore(self) -> None:
        """
        Forward normally again, without delay, listening on the same port.
        """
        self.log.info("fault proxy {url}: restore", url=self.url)
        self.blackholed = False
        self.delay_seconds = 0.0
        for pair in list(self._pairs):
            pair.release()
        if not self._stopped:
            self._listen()

    def stop(self) -> Deferred[None]:
        """
        Stop listening and close every connection.

        :returns: a Deferred firing once everything is closed.
        """
        self._stopped = True
        closing = [self.refuse()]
        for pair in list(self._pairs):
            pair.close()
            closing.append(pair.when_lost())
        done: Deferred[None] = gatherResults(closing).addCallback(lambda _: None)
        return done
