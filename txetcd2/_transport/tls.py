"""
Client TLS for ``https://`` members: loading certificates, the connection policy,
and putting TLS failures in words.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from OpenSSL import SSL
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from txetcd2._logs import PublicLogger

if TYPE_CHECKING:  # Twisted does not export the interface it returns
    from twisted.internet._sslverify import IOpenSSLTrustRoot

#: What a PEM option accepts: a file path, or the PEM bytes themselves.
PEMSource = str | os.PathLike[str] | bytes


def read_source(source: PEMSource, option: str) -> tuple[bytes, str]:
    """
    Read a certificate option's bytes: a file path, or the bytes themselves.

    :param source: a path or bytes.
    :param option: the option's name, for messages.
    :returns: the bytes, and where they came from (for messages).
    :raises ValueError: when the file cannot be read.
    :raises TypeError: for another type.
    """
    if isinstance(source, bytes):
        return source, f"the {option}= bytes"
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                return f.read(), f"{option}={path!r}"
        except OSError as e:
            raise ValueError(
                f"cannot read {option}={path!r}: {e.strerror or e}. "
                "Check the path and its permissions"
            ) from None
    raise TypeError(f"{option} must be a file path or PEM bytes, not {type(source).__name__}")


def read_pem(source: PEMSource, option: str) -> bytes:
    """
    Get PEM bytes from a path or from the bytes themselves.

    :param source: a path (``str`` or path-like), or PEM ``bytes``.
    :param option: the option's name, for messages.
    :returns: the PEM bytes.
    :raises ValueError: when the file cannot be read or holds no PEM.
    :raises TypeError: for another type.
    """
    data, where = read_source(source, option)
    if b"-----BEGIN " not in data:
        raise ValueError(f"{where} holds no PEM data (-----BEGIN ...); give a PEM file")
    return data


def load_trust_root(ca: PEMSource) -> IOpenSSLTrustRoot:
    """
    Build a trust root from one or more PEM CA certificates.

    :param ca: a path or PEM bytes.
    :returns: the trust root.
    :raises ValueError: when it holds no certificate.
    """
    pem = read_pem(ca, "ca")
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise ValueError(f"ca= holds no usable PEM certificate ({e})") from None
    root: IOpenSSLTrustRoot = trustRootFromCertificates(
        [Certificate.loadPEM(c.public_bytes(serialization.Encoding.PEM)) for c in certs]
    )
    return root


def load_client_certificate(
    cert: PEMSource, key: PEMSource | None, passphrase: str | bytes | None
) -> PrivateCertificate:
    """
    Load a client certificate and its private key.

    :param cert: the certificate (path or PEM); may also hold the key.
    :param key: the private key (path or PEM); default: look in ``cert``.
    :param passphrase: the key's passphrase, if it is encrypted.
    :returns: the certificate with its key.
    :raises ValueError: when something is missing, unreadable, encrypted
        without a passphrase, or the key does not match the certificate.
    """
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    data, where = read_source(cert, "cert")
    if key is None and b"-----BEGIN " not in data:
        return _from_pkcs12(data, where, secret)
    cert_pem = read_pem(cert, "cert")
    key_pem = read_pem(key, "key") if key is not None else cert_pem
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise ValueError(f"cert= holds no usable PEM certificate ({e})") from None
    try:
        private_key = serialization.load_pem_private_key(key_pem, secret)
    except TypeError:
        if secret is None:
            raise ValueError(
                "the client key is encrypted: pass passphrase= to decrypt it"
            ) from None
        raise ValueError(
            "passphrase= was given but the client key is not encrypted; drop passphrase="
        ) from None
    except ValueError:
        what = "key=" if key is not None else "cert= (no key= given)"
        raise ValueError(
            f"could not load the client private key from {what}: not a PEM private key, "
            "or the passphrase is wrong"
        ) from None
    return _private_certificate(certificate, private_key)


def _from_pkcs12(data: bytes, where: str, secret: bytes | None) -> PrivateCertificate:
    """
    Load a client certificate and key from a PKCS#12 (``.p12``/``.pfx``) bundle,
    as EtcdNet takes them; ``passphrase=`` is the bundle's password.
    """
    try:
        private_key, certificate, _ = pkcs12.load_key_and_certificates(data, secret)
    except ValueError as e:
        raise ValueError(
            f"{where} is neither PEM nor a PKCS#12 bundle this passphrase opens ({e}); "
            "give a PEM certificate, or the .p12 file with passphrase= its password"
        ) from None
    if private_key is None or certificate is None:
        raise ValueError(f"{where}: the PKCS#12 bundle must hold a certificate and its key")
    return _private_certificate(certificate, private_key)


def _private_certificate(certificate: x509.Certificate, private_key: Any) -> PrivateCertificate:
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if certificate.public_key().public_bytes(der, public) != private_key.public_key().public_bytes(
        der, public
    ):
        raise ValueError("key= does not belong to cert=; give the key of that certificate")
    plain_key = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    loaded: PrivateCertificate = PrivateCertificate.loadPEM(
        certificate.public_bytes(serialization.Encoding.PEM) + plain_key
    )
    return loaded


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedCreator:
    """
    Opens TLS connections without checking the server (``verify=False``).
    """

    def __init__(self, context: SSL.Context, hostname: bytes) -> None:
        self._context = context
        self._hostname = hostname

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        host = self._hostname.decode("ascii")
        if not (isIPAddress(host) or isIPv6Address(host)):
            connection.set_tlsext_host_name(self._hostname)
        connection.set_connect_state()
        return connection


@implementer(IPolicyForHTTPS)
class ClientTLSPolicy:
    """
    How the client opens TLS connections to ``https://`` members.

    The server's certificate is checked against ``ca`` (default: the system
    trust store) and its name or IP address against the endpoint's host,
    with service-identity, unless ``verify=False``.

    :param ca: trusted CA certificates (path or PEM bytes); ``None`` for the
        system trust store.
    :param cert: the client certificate (path or PEM bytes), if any.
    :param key: the client certificate's private key (path or PEM bytes);
        default: looked for in ``cert``.
    :param passphrase: the key's passphrase, if it is encrypted.
    :param verify: ``False`` skips every server check (logged as a warning).
    :raises ValueError: for a missing or unreadable file, or an unusable
        certificate or key.
    """

    log = PublicLogger(namespace="txetcd2.tls")

    def __init__(
        self,
        ca: PEMSource | None = None,
        cert: PEMSource | None = None,
        key: PEMSource | None = None,
        passphrase: str | bytes | None = None,
        verify: bool = True,
    ) -> None:
        if not isinstance(verify, bool):
            raise TypeError(f"verify must be True or False, not {verify!r}")
        if key is not None and cert is None:
            raise ValueError("key= was given without cert=; give the client certificate too")
        if passphrase is not None and cert is None:
            raise ValueError("passphrase= was given without cert= and key=")
        if passphrase is not None and not isinstance(passphrase, str | bytes):
            raise TypeError(f"passphrase must be str or bytes, not {type(passphrase).__name__}")
        self._verify = verify
        self._trust = load_trust_root(ca) if ca is not None else None
        self._client = load_client_certificate(cert, key, passphrase) if cert is not None else None
        self._unverified: SSL.Context | None = None
        if not verify:
            if ca is not None:
                raise ValueError("ca= and verify=False contradict each other; drop one")
            options: dict[str, Any] = {"verify": False}
            if self._client is not None:
                options["certificate"] = self._client.original
                options["privateKey"] = self._client.privateKey.original
            self._unverified = CertificateOptions(**options).getContext()
            self.log.warn(
                "TLS server verification is DISABLED (verify=False): the client will talk "
                "to anyone who answers on the etcd endpoints"
            )

    def __repr__(self) -> str:
        parts = ["verify" if self._verify else "NO verification"]
        parts.append("custom CA" if self._trust is not None else "system CAs")
        if self._client is not None:
            parts.append("client certificate")
        return f"<ClientTLSPolicy {', '.join(parts)}>"

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        """
        The connection creator for one member.

        :param hostname: the endpoint's host (a DNS name or an IP address).
        :param port: its port.
        :returns: the connection creator.
        """
        if self._unverified is not None:
            return _UnverifiedCreator(self._unverified, hostname)
        trust = self._trust if self._trust is not None else platformTrust()
        return optionsForClientTLS(
            hostname.decode("ascii"), trustRoot=trust, clientCertificate=self._client
        )


def check_tls_options(
    agent: object,
    ca: PEMSource | None,
    cert: PEMSource | None,
    key: PEMSource | None,
    passphrase: str | bytes | None,
    verify: bool,
) -> ClientTLSPolicy | None:
    """
    Check a client's TLS options and build its policy.

    :param agent: the agent the client was given, if any.
    :param ca: see :class:`ClientTLSPolicy`.
    :param cert: see :class:`ClientTLSPolicy`.
    :param key: see :class:`ClientTLSPolicy`.
    :param passphrase: see :class:`ClientTLSPolicy`.
    :param verify: see :class:`ClientTLSPolicy`.
    :returns: the policy for the client's own agent, or ``None`` with ``agent``.
    :raises ValueError: for TLS options given together with an agent, and
        see :class:`ClientTLSPolicy`.
    """
    if agent is None:
        return ClientTLSPolicy(ca, cert, key, passphrase, verify)
    if any(option is not None for option in (ca, cert, key, passphrase)) or verify is not True:
        raise ValueError(
            "ca=, cert=, key=, passphrase= and verify= configure the client's own agent; "
            "with agent=, configure TLS on that agent instead"
        )
    return None
