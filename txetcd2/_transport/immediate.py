"""
Sending a request at once on an idle plain TCP connection.

Twisted's TCP transport buffers every write until the reactor's next turn
(and asks epoll to watch the socket for writing, then to stop). A client
that waits for each answer before it asks again (a lock holder, a loop of
sets) pays that turn on every request. When nothing is buffered, the bytes
can go out at once, as asyncio's transports send them; whatever the socket
does not take is buffered as usual.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.tcp import Connection


def send_now(transport: Any, data: bytes) -> None:
    """
    Write ``data`` on ``transport``, sending it at once when the transport is
    an open plain TCP connection with nothing buffered.

    Anything else (TLS, whose transport is a protocol wrapper that forwards
    attribute lookups to the TCP transport below it, a transport of another
    kind, a Twisted whose TCP transport no longer keeps its buffers where it
    used to, bytes already waiting) is written through ``transport.write``
    unchanged.

    :param transport: the connection's transport.
    :param data: the bytes.
    """
    if (
        not isinstance(transport, Connection)
        or getattr(transport, "TLS", True)
        or not getattr(transport, "connected", False)
        or getattr(transport, "disconnecting", True)
        or getattr(transport, "_tempDataLen", 1)
        or len(getattr(transport, "dataBuffer", b"?")) > getattr(transport, "offset", 0)
    ):
        transport.write(data)
        return
    sent = transport.writeSomeData(data)
    if type(sent) is not int or sent <= 0:
        transport.write(data)  # would block, or failed: the transport sends it, or finds the error
    elif sent < len(data):
        transport.write(data[sent:])
