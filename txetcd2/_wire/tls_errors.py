"""
Putting TLS failures in words: which failures come from the configuration, and what to check.
"""

from __future__ import annotations

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from txetcd2._wire.errors import EtcdTLSError


def _reasons(error: BaseException) -> list[BaseException]:
    if isinstance(error, ResponseNeverReceived | ResponseFailed):
        return [r.value for r in error.reasons]
    return [error]


def _ssl_text(error: SSL.Error) -> str:
    parts: list[str] = []
    for item in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return " ".join(parts) or str(error)


def tls_error_for(endpoint: str, error: BaseException) -> EtcdTLSError | None:
    """
    Recognize a TLS failure and say what to check.

    :param endpoint: the member's URL.
    :param error: the HTTP layer's exception.
    :returns: the typed error, or ``None`` when this is not a TLS failure
        known to come from the configuration (those are retried elsewhere
        like any connection failure).
    """
    for reason in _reasons(error):
        if isinstance(reason, VerificationError):
            return EtcdTLSError(
                endpoint,
                f"the server's certificate is not valid for this host ({reason})",
                check="use the host name or IP address the certificate was issued for "
                "(its subjectAltName), or reissue the server certificate",
            )
        if isinstance(reason, SSL.Error):
            text = _ssl_text(reason)
            lower = text.lower()
            if "certificate verify failed" in lower:
                return EtcdTLSError(
                    endpoint,
                    f"the server's certificate is not trusted ({text})",
                    check="pass ca= with the CA that signed the etcd server certificate",
                )
            if (
                "certificate required" in lower
                or "bad certificate" in lower
                or ("unknown ca" in lower)
            ):
                return EtcdTLSError(
                    endpoint,
                    f"the server refused the client certificate ({text})",
                    check="pass cert= and key= with a client certificate signed by the CA "
                    "etcd trusts (--trusted-ca-file)",
                )
            if (
                "wrong version number" in lower
                or "record layer failure" in lower
                or ("packet length too long" in lower)
            ):
                return EtcdTLSError(
                    endpoint,
                    f"the server does not speak TLS ({text})",
                    check="use http:// for this endpoint, or enable TLS on etcd",
                )
            # Not recognized as a configuration error: left to the cluster's
            # failover (a handshake that failed never sent the request).
    return None


#: What Go's TLS server answers to a plain HTTP request.
_PLAIN_TO_TLS = b"client sent an http request to an https server"


def closed_without_answer(error: BaseException) -> bool:
    """
    Tell whether the server closed the connection before sending a byte.

    :param error: the HTTP layer's exception.
    :returns: ``True`` for a close (clean or not) before any answer.
    """
    return isinstance(error, ResponseNeverReceived) and all(
        r.check(ConnectionDone, ConnectionLost) is not None for r in error.reasons
    )


#: What OpenSSL says when the other side is not speaking TLS at all.
_NOT_TLS = ("wrong version number", "record layer failure", "packet length too long", "eof")


def speaks_tls(error: BaseException) -> bool:
    """
    Tell whether a TLS connection attempt that failed reached a TLS server:
    the handshake failed on certificates or protocol options, not because the
    other side sent something else or closed the connection.

    :param error: the HTTP layer's exception for an ``https://`` request.
    :returns: ``True`` when the other side speaks TLS.
    """
    for reason in _reasons(error):
        if isinstance(reason, VerificationError):
            return True
        if isinstance(reason, SSL.Error):
            text = _ssl_text(reason).lower()
            return not any(words in text for words in _NOT_TLS)
    return False


def plain_port_error(endpoint: str) -> EtcdTLSError:
    """
    The error for an ``https://`` request sent to a port that serves plain HTTP.

    :param endpoint: the member's URL.
    :returns: the error.
    """
    return EtcdTLSError(
        endpoint,
        "this port serves plain HTTP but the request used TLS (etcd closed the connection "
        "during the TLS handshake)",
        check="use an http:// URL for this endpoint, or start etcd with TLS "
        "(--cert-file/--key-file)",
    )


def tls_port_error(endpoint: str) -> EtcdTLSError:
    """
    The error for a plain ``http://`` request sent to a port that serves TLS.

    :param endpoint: the member's URL.
    :returns: the error.
    """
    return EtcdTLSError(
        endpoint,
        "this port serves TLS but the request was plain HTTP",
        check="use an https:// URL for this endpoint (with ca= for its CA)",
    )


def plain_http_to_tls(endpoint: str, status: int, body: bytes) -> EtcdTLSError | None:
    """
    Recognize the answer to a plain ``http://`` request sent to a TLS port.

    :param endpoint: the member's URL.
    :param status: the HTTP status of the answer.
    :param body: its body.
    :returns: the typed error, or ``None``.
    """
    if status == 400 and _PLAIN_TO_TLS in body.lower():
        return tls_port_error(endpoint)
    return None
