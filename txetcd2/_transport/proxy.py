"""
HTTP proxies for the agent pool.

``http://`` members are reached through the proxy with absolute-form
requests (``GET http://member/v2/keys/a HTTP/1.1``); ``https://`` members
through a ``CONNECT`` tunnel, with TLS from the client to the member over it
(the member's certificate is verified end to end, as without a proxy).

A proxy is given as a URL (``http://[user:password@]host:port``), or as
``"env"`` to follow the standard ``http_proxy``/``https_proxy``/``no_proxy``
environment variables (read when the client is built).
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from txetcd2._transport.agent import EndpointCache

#: The most bytes a proxy's answer to ``CONNECT`` may take.
MAX_TUNNEL_ANSWER = 16 * 1024


class ProxyTunnelError(ConnectError):
    """
    The proxy did not open a tunnel to the member (the request never left).
    """


class Proxy:
    """
    One HTTP proxy.

    :param url: ``http://[user:password@]host[:port]`` (port 80 by default).
    :raises TypeError: when ``url`` is not a string.
    :raises ValueError: for another scheme or no host.
    """

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise TypeError(f"proxy must be a URL string, not {type(url).__name__}")
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(
                f"proxy must be an http:// URL (got {parts.scheme or 'no'} scheme); "
                "https:// members are reached through it with CONNECT"
            )
        if not parts.hostname:
            raise ValueError("the proxy URL has no host: give http://host:port")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.authorization: bytes | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.authorization = b"Basic " + base64.b64encode(pair.encode("utf-8"))

    def __repr__(self) -> str:
        who = "with credentials, " if self.authorization is not None else ""
        return f"<Proxy {who}http://{self.host}:{self.port}>"

    def header_lines(self) -> bytes:
        """
        :returns: the ``Proxy-Authorization`` header line, or nothing.
        """
        if self.authorization is None:
            return b""
        return b"Proxy-Authorization: " + self.authorization + b"\r\n"


#: Which proxy to use for a member: (scheme, host) -> proxy or ``None`` (direct).
ProxyChoice = Callable[[str, str], Proxy | None]


def proxy_choice(proxy: str | None) -> ProxyChoice | None:
    """
    Turn the ``proxy=`` option into a choice per member.

    :param proxy: a proxy URL, ``"env"`` for the environment variables, or
        ``None`` for no proxy.
    :returns: the choice, or ``None`` when no member goes through a proxy.
    :raises TypeError: for another type.
    :raises ValueError: for a URL that is not a usable proxy.
    """
    if proxy is None:
        return None
    if proxy == "env":
        return _from_environment(urllib.request.getproxies_environment())
    fixed = Proxy(proxy)
    return lambda scheme, host: fixed


def _from_environment(found: dict[str, str]) -> ProxyChoice | None:
    proxies: dict[str, Proxy] = {
        scheme: Proxy(found[scheme]) for scheme in ("http", "https") if scheme in found
    }
    if not proxies:
        return None
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]

    def choose(scheme: str, host: str) -> Proxy | None:
        if bypass(host, found):
            return None
        return proxies.get(scheme)

    return choose


class _Tunnel(Protocol):
    """
    Asks the proxy for a tunnel, then hands the connection to the real protocol.
    """

    def __init__(self, factory: IProtocolFactory, target: bytes, proxy: Proxy) -> None:
        self._factory = factory
        self._target = target
        self._proxy = proxy
        self._buffer = b""
        self._inner: IProtocol | None = None
        self.established: Deferred[IProtocol] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[IProtocol]) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        d.errback(Failure(ConnectingCancelledError(self._target)))

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(
            b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
            % (self._target, self._target, self._proxy.header_lines())
        )

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        if self.established.called:
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_TUNNEL_ANSWER:
                self._refused("an answer to CONNECT that does not end")
            return
        status_line = self._buffer.split(b"\r\n", 1)[0]
        rest = self._buffer[end + 4 :]
        self._buffer = b""
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            self._refused(f"not an HTTP answer: {status_line[:80]!r}")
            return
        if not 200 <= int(parts[1]) < 300:
            self._refused(status_line.decode("latin-1"))
            return
        assert self.transport is not None
        inner = self._factory.buildProtocol(self.transport.getPeer())
        if inner is None:
            self._refused("the connection was not wanted any more")
            return
        self._inner = inner
        inner.makeConnection(self.transport)
        self.established.callback(inner)
        if rest:
            inner.dataReceived(rest)

    def _refused(self, why: str) -> None:
        target = self._target.decode("ascii", "replace")
        self.established.errback(
            Failure(
                ProxyTunnelError(
                    f"the proxy {self._proxy.host}:{self._proxy.port} did not open a tunnel "
                    f"to {target} ({why}); check the proxy's rules (e.g. its allowed CONNECT "
                    "ports) and credentials"
                )
            )
        )
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._inner is not None:
            self._inner.connectionLost(reason)
        elif not self.established.called:
            self._refused(f"it closed the connection: {reason.getErrorMessage()}")


class _TunnelFactory(Factory):
    noisy = False

    def __init__(self, inner: IProtocolFactory, target: bytes, proxy: Proxy) -> None:
        self._inner = inner
        self._target = target
        self._proxy = proxy

    def buildProtocol(self, addr: Any) -> _Tunnel:
        return _Tunnel(self._inner, self._target, self._proxy)


@implementer(IStreamClientEndpoint)
class TunnelEndpoint:
    """
    Connects to ``host:port`` through an HTTP proxy's ``CONNECT`` tunnel.

    :param proxy_endpoint: the endpoint of the proxy itself.
    :param proxy: the proxy.
    :param host: the member's host.
    :param port: the member's port.
    """

    def __init__(
        self, proxy_endpoint: IStreamClientEndpoint, proxy: Proxy, host: str, port: int
    ) -> None:
        self._proxy_endpoint = proxy_endpoint
        self._proxy = proxy
        self._target = (f"[{host}]" if ":" in host else host).encode("ascii") + b":%d" % port

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Open the tunnel; fire with ``protocolFactory``'s protocol once it is up.

        :param protocolFactory: the factory of the protocol spoken through it.
        :returns: a Deferred firing with that protocol.
        """
        factory = _TunnelFactory(protocolFactory, self._target, self._proxy)
        connecting = self._proxy_endpoint.connect(factory)

        def opened(tunnel: IProtocol) -> Deferred[IProtocol]:
            assert isinstance(tunnel, _Tunnel)
            return tunnel.established

        return connecting.addCallback(opened)


class ProxiedEndpoints(EndpointCache):
    """
    Endpoints to members, through the proxy chosen for each (or direct).

    :param reactor: the reactor.
    :param choose: which proxy a member goes through.
    :param tls: the policy for ``https`` members.
    :param connect_timeout: seconds to wait for a connection.
    """

    def __init__(
        self,
        reactor: Any,
        choose: ProxyChoice,
        tls: IPolicyForHTTPS | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        super().__init__(reactor, tls, connect_timeout)
        self._choose = choose

    def _tcp(self, scheme: bytes, host: str, port: int) -> IStreamClientEndpoint:
        proxy = self._choose(scheme.decode("ascii"), host)
        if proxy is None:
            return super()._tcp(scheme, host, port)
        endpoint = proxy_endpoint(self._reactor, proxy, self._connect_timeout)
        if scheme == b"https":
            endpoint = TunnelEndpoint(endpoint, proxy, host, port)
        return endpoint


def proxy_endpoint(reactor: Any, proxy: Proxy, timeout: float | None) -> IStreamClientEndpoint:
    """
    The endpoint of the proxy itself.

    :param reactor: the reactor.
    :param proxy: the proxy.
    :param timeout: seconds to wait for a connection, or ``None``.
    :returns: the endpoint.
    """
    options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, proxy.host, proxy.port, **options)
    return endpoint
