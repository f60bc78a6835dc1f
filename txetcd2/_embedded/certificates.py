"""
Throw-away certificates for tests: a CA, server and client certificates, in memory.

Used by the integration tests to start etcd with TLS; never use these for
anything real (the keys are small-lived and the CA has no constraints
beyond what a test needs).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@attrs.frozen(repr=False)
class Issued:
    """
    A certificate and its private key.

    :ivar cert_pem: the certificate, PEM.
    :ivar key: the private key.
    """

    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey

    def __repr__(self) -> str:
        return "<Issued certificate>"

    def key_pem(self, passphrase: bytes | None = None) -> bytes:
        """
        The private key in PEM (PKCS#8), encrypted if a passphrase is given.

        :param passphrase: the passphrase to encrypt it with.
        :returns: the PEM bytes.
        """
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def pkcs12(self, password: bytes) -> bytes:
        """
        The certificate and key as a PKCS#12 bundle (``.p12``), as EtcdNet takes them.

        :param password: the bundle's password.
        :returns: the DER bytes.
        """
        certificate = x509.load_pem_x509_certificate(self.cert_pem)
        return pkcs12.serialize_key_and_certificates(
            b"txetcd2",
            self.key,
            certificate,
            None,
            serialization.BestAvailableEncryption(password),
        )

    def write(
        self, directory: Path, stem: str, passphrase: bytes | None = None
    ) -> tuple[Path, Path]:
        """
        Write the certificate and key as ``<stem>.crt`` and ``<stem>.key``.

        :param directory: where to write them.
        :param stem: the file names' stem.
        :param passphrase: encrypt the key with this.
        :returns: the certificate's path and the key's path.
        """
        cert_path = directory / f"{stem}.crt"
        key_path = directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem(passphrase))
        key_path.chmod(0o600)
        return cert_path, key_path


class CertificateAuthority:
    """
    A self-signed CA that issues server and client certificates.

    :param common_name: the CA's name.
    """

    def __init__(self, common_name: str = "txetcd2 test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self._name = _name(common_name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        self._cert = cert
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)

    def __repr__(self) -> str:
        return f"<CertificateAuthority {self._name.rfc4514_string()}>"

    def issue(
        self,
        common_name: str,
        *,
        dns: Sequence[str] = (),
        ips: Sequence[str] = (),
        server: bool = True,
        client: bool = True,
    ) -> Issued:
        """
        Issue a certificate.

        :param common_name: its CommonName (etcd may take it as the user name).
        :param dns: DNS names for the subjectAltName.
        :param ips: IP addresses for the subjectAltName.
        :param server: allow server authentication.
        :param client: allow client authentication.
        :returns: the certificate and its key.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), key)


@attrs.frozen
class TLSFiles:
    """
    The files of a TLS test setup.

    :ivar ca: the CA certificate.
    :ivar server_cert: the server certificate (``localhost`` and ``127.0.0.1``).
    :ivar server_key: its key.
    :ivar client_cert: a client certificate (CommonName ``client``).
    :ivar client_key: its key.
    """

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def etcd_args(self, client_cert_auth: bool = True) -> list[str]:
        """
        The etcd flags that serve clients over TLS with these files.

        :param client_cert_auth: require client certificates.
        :returns: the arguments.
        """
        args = [f"--cert-file={self.server_cert}", f"--key-file={self.server_key}"]
        if client_cert_auth:
            # etcd asks for client certificates whenever --trusted-ca-file is set
            args += [f"--trusted-ca-file={self.ca}", "--client-cert-auth"]
        return args


def write_tls_files(
    directory: Path,
    ca: CertificateAuthority | None = None,
    server_dns: Sequence[str] = ("localhost",),
    server_ips: Sequence[str] = ("127.0.0.1",),
) -> TLSFiles:
    """
    Create a CA, a server and a client certificate, and write them out.

    :param directory: an existing directory.
    :param ca: the CA to use (default: a new one).
    :param server_dns: the server certificate's DNS names.
    :param server_ips: the server certificate's IP addresses.
    :returns: the paths.
    """
    if ca is None:
        ca = CertificateAuthority()
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca.cert_pem)
    server = ca.issue(server_dns[0] if server_dns else "etcd", dns=server_dns, ips=server_ips)
    server_cert, server_key = server.write(directory, "server")
    client = ca.issue("client", server=False)
    client_cert, client_key = client.write(directory, "client")
    return TLSFiles(ca_path, server_cert, server_key, client_cert, client_key)
