"""
Client TLS connections that deliver each read from the socket in one piece
and encrypt their writes once per read.

Twisted's default TLS transport (``BufferingTLSTransport``) hands the
application each decrypted TLS record on its own (etcd sends one record per
answer, so 64 pipelined answers make up to 64 calls), gathers the
application's writes until the reactor's next turn, then encrypts them
together, and the encrypted bytes wait one turn more in the TCP transport's
buffer (and epoll is asked to watch the socket for writing, then to stop).
A client whose callbacks make the next requests (the next get asked for when
the last one came back) pays all of it on every round of requests.

:class:`TLSConnection` hands the application everything one read from the
socket decrypts to, in one call; encrypts what the application wrote while
it read when that read ends, together; and gives encrypted bytes to the
socket at once when nothing waits before them
(:func:`~txetcd2._transport.immediate.send_now`). Writes made outside a read
are gathered until the reactor's next turn, as Twisted's transport does. The
policy, certificates and verification are the connection creator's,
unchanged: only the buffering differs.

It overrides two private methods of Twisted's
:class:`~twisted.protocols.tls.TLSMemoryBIOProtocol`; :data:`AVAILABLE` is
false when a Twisted no longer has the attributes it uses, and
:func:`tls_endpoint` then wraps with Twisted's own transport.
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txetcd2._transport.immediate import send_now

#: Bytes gathered before they are encrypted without waiting further (as in
#: Twisted's own gathering).
MAX_GATHERED = 64_000

#: The private parts of Twisted's TLS protocol this module relies on.
_TWISTED_PARTS = (
    "_flushReceiveBIO",
    "_flushSendBIO",
    "_shutdownTLS",
    "_tlsShutdownFinished",
    "_lostTLSConnection",
    "_aborted",
    "_producer",
)

#: Whether this Twisted's TLS protocol has what :class:`TLSConnection` uses.
AVAILABLE = all(hasattr(TLSMemoryBIOProtocol, name) for name in _TWISTED_PARTS)


class TLSConnection(TLSMemoryBIOProtocol):
    """
    A client TLS connection that delivers each read's records in one call
    and encrypts its writes once per read or reactor turn (see the module).
    """

    factory: TLSConnectionFactory
    _gathered: list[bytes] | None = None
    _gathered_size = 0
    _scheduled: IDelayedCall | None = None
    _receiving = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """
        Gather ``data``, to be encrypted when the current read ends, or at the
        reactor's next turn outside a read (at once past :data:`MAX_GATHERED`).

        As with Twisted's transport, bytes written after
        :meth:`loseConnection` (without a producer) are dropped.

        :param data: application bytes (or a bytes-like object).
        :raises TypeError: for ``str``.
        """
        if isinstance(data, str):
            raise TypeError("TLS connections write bytes, not str")
        payload = data if type(data) is bytes else bytes(data)
        if self._lostTLSConnection or (self.disconnecting and self._producer is None):
            return
        gathered = self._gathered
        if gathered is None:
            self._gathered = gathered = []
            if not self._receiving:
                self._scheduled = self.factory.clock.callLater(0, self._flush)
        gathered.append(payload)
        self._gathered_size += len(payload)
        if self._gathered_size >= MAX_GATHERED:
            self._flush()

    def writeSequence(self, iovec: Any) -> None:
        """Gather the bytes of ``iovec``, as :meth:`write` does."""
        self.write(b"".join(iovec))

    def dataReceived(self, data: bytes) -> None:
        """Deliver what ``data`` decrypts to, then encrypt what that wrote."""
        self._receiving = True
        try:
            super().dataReceived(data)
        finally:
            self._receiving = False
            self._flush()

    def loseConnection(self) -> None:
        """Encrypt and send what was gathered, then close as TLS does."""
        self._flush()
        super().loseConnection()

    def unregisterProducer(self) -> None:
        """Encrypt what the producer wrote first (a close waiting for it follows)."""
        self._flush()
        super().unregisterProducer()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Drop what was gathered (nothing can send it now), then report."""
        self._cancel()
        self._gathered = None
        self._gathered_size = 0
        super().connectionLost(reason)

    def _flush(self) -> None:
        self._cancel()
        gathered = self._gathered
        if gathered is not None:
            self._gathered = None
            self._gathered_size = 0
            TLSMemoryBIOProtocol.write(
                self, gathered[0] if len(gathered) == 1 else b"".join(gathered)
            )

    def _cancel(self) -> None:
        scheduled = self._scheduled
        if scheduled is not None:
            self._scheduled = None
            if scheduled.active():
                scheduled.cancel()

    def _flushReceiveBIO(self) -> None:
        # Twisted's method, delivering all the records a read decrypted in
        # one call rather than one call per record; then, as Twisted's, the
        # end of the TLS session (close_notify, or an error) and what
        # OpenSSL has to send.
        tls = self._tlsConnection
        chunks: list[bytes] = []
        error: Failure | None = None
        closed = False
        while not self._lostTLSConnection:
            try:
                chunks.append(tls.recv(2**15))
            except WantReadError:
                break
            except ZeroReturnError:
                closed = True
                break
            except Error:
                error = Failure()
                break
        if chunks and not self._aborted:
            ProtocolWrapper.dataReceived(self, chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if closed:
            self._shutdownTLS()
            self._tlsShutdownFinished(None)
        elif error is not None:
            self._tlsShutdownFinished(error)
        self._flushSendBIO()

    def _flushSendBIO(self) -> None:
        # Twisted's method, with the bytes sent at once when the TCP
        # transport has nothing waiting.
        try:
            data = self._tlsConnection.bio_read(2**15)
        except WantReadError:  # nothing to send
            return
        send_now(self.transport, data)


class TLSConnectionFactory(TLSMemoryBIOFactory):
    """
    A client :class:`TLSMemoryBIOFactory` building :class:`TLSConnection` s.

    :param creator: the connection creator: policy, certificates, checks.
    :param wrapped: the application's protocol factory.
    :param clock: the reactor that times the gathering of writes.
    """

    protocol = TLSConnection

    def __init__(
        self,
        creator: IOpenSSLClientConnectionCreator,
        wrapped: IProtocolFactory,
        clock: IReactorTime,
    ) -> None:
        super().__init__(creator, True, wrapped, clock)
        self.clock = clock


@implementer(IStreamClientEndpoint)
class _TLSEndpoint:
    def __init__(
        self,
        creator: IOpenSSLClientConnectionCreator,
        endpoint: IStreamClientEndpoint,
        clock: IReactorTime,
    ) -> None:
        self._creator = creator
        self._endpoint = endpoint
        self._clock = clock

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        wrapper = TLSConnectionFactory(self._creator, factory, self._clock)
        connecting: Deferred[Any] = self._endpoint.connect(wrapper)
        return connecting.addCallback(lambda protocol: protocol.wrappedProtocol)

    def __repr__(self) -> str:
        return f"<TLS over {self._endpoint!r}>"


def tls_endpoint(
    creator: IOpenSSLClientConnectionCreator,
    endpoint: IStreamClientEndpoint,
    clock: IReactorTime,
) -> IStreamClientEndpoint:
    """
    TLS over ``endpoint`` with :class:`TLSConnection` (Twisted's
    :func:`~twisted.internet.endpoints.wrapClientTLS` when this Twisted lacks
    what it uses: see :data:`AVAILABLE`).

    :param creator: the connection creator: policy, certificates, checks.
    :param endpoint: the endpoint of the connection below TLS.
    :param clock: the reactor that times the gathering of writes.
    :returns: the endpoint; a connection's protocol is the application's.
    """
    if not AVAILABLE:
        return wrapClientTLS(creator, endpoint)
    return _TLSEndpoint(creator, endpoint, clock)
