"""
The client's own HTTP agent and treq client, without the per-request work
etcd does not need.

Twisted's :class:`~twisted.web.client.Agent` builds a new
:class:`~twisted.internet.endpoints.HostnameEndpoint` for every request
(with an IDNA check of the host) and, for ``https``, a new TLS connection
creator; :class:`EndpointCache` builds one per member and reuses it, and its
TCP connections do not use Nagle's algorithm (``TCP_NODELAY``, as asyncio's
and Go's connections): a body written in parts would otherwise wait for
etcd's delayed acknowledgement, 40 ms, before its last part went out. treq
builds a new cookie jar for every request and runs the standard library's
cookie machinery on every request and answer; etcd never sets cookies, so
:class:`NoCookies` keeps none and does nothing.
"""

from __future__ import annotations

from http.cookiejar import Cookie
from typing import Any

from treq.client import HTTPClient
from treq.cookies import IndexableCookieJar
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IConsumer,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

from txetcd2._transport.tls_connection import tls_endpoint

#: How many members' endpoints are kept; beyond it the cache starts afresh
#: (members come and go with member-list syncs, rarely).
MAX_ENDPOINTS = 256


@implementer(IAgentEndpointFactory)
class EndpointCache:
    """
    Builds one endpoint per (scheme, host, port) and reuses it for every request.

    A :class:`HostnameEndpoint` holds no per-connection state, so one serves
    any number of connections; the connection pool still keys connections
    by (scheme, host, port).

    :param reactor: the reactor to connect with.
    :param tls: the policy for ``https`` members (default: Twisted's
        browser-like policy, as :class:`~twisted.web.client.Agent` uses).
    :param connect_timeout: seconds to wait for a connection; ``None`` for
        the endpoint's default.
    """

    def __init__(
        self,
        reactor: Any,
        tls: IPolicyForHTTPS | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self._reactor = reactor
        self._tls: IPolicyForHTTPS = tls if tls is not None else BrowserLikePolicyForHTTPS()
        self._connect_timeout = connect_timeout
        self._endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """
        The endpoint for a request's URI, built on first use.

        :param uri: the request's URI.
        :returns: the endpoint for its scheme, host and port.
        :raises SchemeNotSupported: for a scheme other than ``http`` and ``https``.
        :raises ValueError: for a host that is not ASCII.
        """
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._build(uri.scheme, uri.host, uri.port)
            if len(self._endpoints) >= MAX_ENDPOINTS:
                self._endpoints.clear()
            self._endpoints[key] = endpoint
        return endpoint

    def _build(self, scheme: bytes, host: bytes, port: int) -> IStreamClientEndpoint:
        if scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"Unsupported scheme: {scheme!r}")
        try:
            text = host.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(
                f"the host {host!r} is not ASCII; give members by IP address or an "
                "IDNA-encoded name"
            ) from None
        endpoint: IStreamClientEndpoint = NoDelayEndpoint(self._tcp(scheme, text, port))
        if scheme == b"https":
            creator = self._tls.creatorForNetloc(host, port)
            endpoint = tls_endpoint(creator, endpoint, self._reactor)
        return endpoint

    def _tcp(self, scheme: bytes, host: str, port: int) -> IStreamClientEndpoint:
        """
        The endpoint of the connection under TLS (if any) for one member.

        :param scheme: the member's scheme.
        :param host: its host.
        :param port: its port.
        :returns: a :class:`HostnameEndpoint` to it.
        """
        options: dict[str, Any] = {}
        if self._connect_timeout is not None:
            options["timeout"] = self._connect_timeout
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self._reactor, host, port, **options)
        return endpoint


@implementer(IStreamClientEndpoint)
class NoDelayEndpoint:
    """
    Connections of another endpoint, with ``TCP_NODELAY`` set on each once
    connected (when its transport is a TCP connection).

    :param endpoint: the endpoint that connects.
    """

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Connect, then turn Nagle's algorithm off on the connection.

        :param factory: the protocol factory.
        :returns: a Deferred firing with the connected protocol.
        """
        connecting: Deferred[IProtocol] = self._endpoint.connect(factory)
        return connecting.addCallback(_no_delay)

    def __repr__(self) -> str:
        return f"<no delay: {self._endpoint!r}>"


def _no_delay(protocol: IProtocol) -> IProtocol:
    set_no_delay = getattr(getattr(protocol, "transport", None), "setTcpNoDelay", None)
    if set_no_delay is not None:
        set_no_delay(True)
    return protocol


def caching_agent(
    reactor: Any,
    pool: HTTPConnectionPool,
    tls: IPolicyForHTTPS | None = None,
    connect_timeout: float | None = None,
) -> Agent:
    """
    An :class:`~twisted.web.client.Agent` over ``pool`` that reuses one
    endpoint per member (:class:`EndpointCache`).

    :param reactor: the reactor.
    :param pool: the connection pool.
    :param tls: the policy for ``https`` members.
    :param connect_timeout: seconds to wait for a connection.
    :returns: the agent.
    """
    factory = EndpointCache(reactor, tls, connect_timeout)
    agent: Agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
    return agent


class NoCookies(IndexableCookieJar):
    """
    A cookie jar that keeps no cookies and does no work.

    Given to treq as the client's jar and as every request's ``cookies=``,
    it spares the per-request jar, the ``Cookie`` header lookup and the
    parsing of answers for ``Set-Cookie`` (etcd sets no cookies).
    """

    def add_cookie_header(self, request: Any) -> None:
        """
        Add nothing: there are no cookies.

        :param request: the request (untouched).
        """

    def extract_cookies(self, response: Any, request: Any) -> None:
        """
        Keep nothing from an answer.

        :param response: the answer (ignored).
        :param request: the request (ignored).
        """

    def set_cookie(self, cookie: Cookie) -> None:
        """
        Drop a cookie.

        :param cookie: the cookie (ignored).
        """

    def set_cookie_if_ok(self, cookie: Cookie, request: Any) -> None:
        """
        Drop a cookie.

        :param cookie: the cookie (ignored).
        :param request: the request (ignored).
        """


@implementer(IBodyProducer)
class BytesProducer:
    """
    A body producer that writes its bytes at once, without a cooperator.

    treq's default producer schedules its writes on the global reactor; this
    one needs no reactor at all.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def stopProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


def as_body_producer(data: Any) -> IBodyProducer:
    """
    What treq makes of a request's ``data=``: a :class:`BytesProducer` as
    it is (without an interface adaptation per request), anything else as
    treq's default does.

    :param data: the body treq was given.
    :returns: its producer.
    """
    if type(data) is BytesProducer:
        return data
    producer: IBodyProducer = IBodyProducer(data)
    return producer


#: The jar given as every request's ``cookies=`` (it never holds a cookie).
NO_COOKIES = NoCookies()


def etcd_http_client(agent: IAgent) -> HTTPClient:
    """
    A treq client over ``agent`` whose jar keeps no cookies.

    :param agent: the agent.
    :returns: the treq client; send its requests with ``cookies=NO_COOKIES``.
    """
    return HTTPClient(agent, cookiejar=NoCookies(), data_to_body_producer=as_body_producer)
