"""
Which agent the client builds for itself: the agent pool when ``httptools``
is installed, Twisted's :class:`~twisted.web.client.Agent` otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.iweb import IAgent, IPolicyForHTTPS

from txetcd2._transport.agent import caching_agent
from txetcd2._transport.twisted_pool import quiet_pool

#: Requests in flight per connection for pipelined reads (1: no pipelining).
#: Chosen from workload C (64 gets in flight, bench/README.rst, "The agent
#: pool"): depth 16 over 4 connections gave 4 % more gets per second than
#: depth 8 over 8 (6 % over TLS), and 4-5 % less CPU per get; depth 32 over
#: 2 gave 3 % more in clear, none over TLS, and would put up to 31 reads
#: behind a slow one.
PIPELINE_DEPTH = 16


#: Set to ``twisted`` to make clients use Twisted's ``Agent`` even with
#: ``httptools`` installed (e.g. to run the test suite on both agents).
AGENT_VARIABLE = "TXETCD2_AGENT"


def has_httptools() -> bool:
    """
    Tell whether the C HTTP parser the agent pool needs can be imported.

    :returns: ``True`` when ``httptools`` is installed.
    """
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


def default_agent(
    reactor: Any,
    tls: IPolicyForHTTPS | None,
    connect_timeout: float | None,
    pool_size: int,
    pool: bool | None = None,
    proxy: str | None = None,
    pipeline_depth: int | None = None,
) -> tuple[IAgent, Callable[[], Deferred[None]]]:
    """
    Build the client's own agent, and the call that closes its connections.

    :param reactor: the reactor.
    :param tls: the policy for ``https`` members.
    :param connect_timeout: seconds to wait for a connection.
    :param pool_size: connections per member: the agent pool's cap (and
        the idle ones it keeps), or the idle ones Twisted's pool keeps.
    :param pool: ``True`` for the agent pool, ``False`` for Twisted's
        ``Agent``; ``None`` picks the pool when ``httptools`` is installed,
        unless the ``TXETCD2_AGENT`` environment variable says ``twisted``.
    :param proxy: an HTTP proxy's URL, or ``"env"`` (the agent pool only).
    :param pipeline_depth: reads in flight per pipelined connection
        (default: :data:`PIPELINE_DEPTH`; above 1, the agent pool only).
    :returns: the agent and a function closing its connections (its
        Deferred fires once they are closed).
    :raises ValueError: for ``proxy``, or a ``pipeline_depth`` above 1,
        without the agent pool, and see :class:`~txetcd2._transport.proxy.Proxy`.
    """
    if pool is None:
        pool = has_httptools() and os.environ.get(AGENT_VARIABLE, "").lower() != "twisted"
    if proxy is not None:
        from txetcd2._transport.proxy import proxy_choice

        proxy_choice(proxy)  # a bad proxy is a TypeError or ValueError first
    # (Twisted's Agent never pipelines: pipeline_depth=1 asks for nothing more.)
    deeper = pipeline_depth is not None and pipeline_depth > 1
    if not pool and (proxy is not None or deeper):
        option = "proxy=" if proxy is not None else f"pipeline_depth={pipeline_depth}"
        raise ValueError(
            f"{option} needs the client's agent pool: install httptools (and do not set "
            f"{AGENT_VARIABLE}=twisted)"
        )
    if pool:
        from txetcd2._transport.pool import EtcdAgent

        agent = EtcdAgent(
            reactor,
            tls,
            connect_timeout,
            max_connections=pool_size,
            max_idle=pool_size,
            pipeline_depth=PIPELINE_DEPTH if pipeline_depth is None else pipeline_depth,
            proxy=proxy,
        )
        return agent, agent.closeCachedConnections
    twisted_pool = quiet_pool(reactor, pool_size)
    return caching_agent(
        reactor, twisted_pool, tls, connect_timeout
    ), twisted_pool.closeCachedConnections
