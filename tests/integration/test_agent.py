"""
Twisted's ``Agent`` as the client builds it (its fallback without
``httptools``: :func:`~txetcd2._transport.agent.caching_agent`) against a
real etcd.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.web.client import HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from tests.integration._single_etcd import reactor
from tests.integration._support import EtcdTestCase
from tests.integration.test_pool import InParts
from txetcd2._transport.agent import caching_agent


class TwistedAgentTests(EtcdTestCase):
    """
    Twisted's ``Agent`` over the client's endpoints.
    """

    async def test_body_written_in_parts(self) -> None:
        """A body written in parts, at different reactor turns, is sent as written,
        and the connection does not use Nagle's algorithm (which would hold the last
        part until etcd acknowledged the first, up to 40 ms later). The client's
        endpoints turn it off for both agents; Twisted's HTTP client also does
        from Twisted 24.10, not before."""
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        agent = caching_agent(reactor, pool)
        url = f"{self.cluster.client_urls[0]}/v2/keys/parts/k".encode()
        for i in range(5):
            answer = await agent.request(
                b"PUT",
                url,
                Headers({b"content-type": [b"application/x-www-form-urlencoded"]}),
                InParts([b"value=", b"v%d" % i]),
            )
            self.assertEqual(answer.code, 200 if i else 201)
            self.assertIn(b'"value":"v%d"' % i, await readBody(answer))
        self.assertEqual(await self.client.get_value("parts/k"), "v4")
        kept: Any = pool._connections  # Twisted's cache of idle connections
        options = [
            protocol.transport.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            for protocols in kept.values()
            for protocol in protocols
        ]
        self.assertEqual(options, [1])
