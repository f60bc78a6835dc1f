"""
TLS with client certificates against a real etcd.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.integration._single_etcd import reactor, start_etcd, temp_dir
from txetcd2 import EtcdClient, EtcdTLSError
from txetcd2._embedded.certificates import CertificateAuthority, TLSFiles, write_tls_files


class TLSTests(TestCase):
    """
    One etcd with TLS and --client-cert-auth, and clients configured right and wrong.
    """

    timeout = 300

    def setUp(self) -> None:
        self.dir = temp_dir(self, "txetcd2-certs-")
        self.ca = CertificateAuthority()
        self.files: TLSFiles = write_tls_files(self.dir, self.ca)
        self.etcd = start_etcd(self, "https", self.files.etcd_args())

    def client(self, url: str | list[str] | None = None, **options: object) -> EtcdClient:
        client = EtcdClient(url or self.etcd.url, reactor=reactor, **options)  # type: ignore[arg-type]
        self.addCleanup(client.close)
        return client

    def good(self) -> EtcdClient:
        return self.client(
            ca=self.files.ca, cert=self.files.client_cert, key=self.files.client_key
        )

    async def _ready(self) -> None:
        await self.etcd.wait_ready(self.good())

    async def _fails(self, client: EtcdClient, words: str) -> EtcdTLSError:
        with self.assertRaises(EtcdTLSError) as caught:
            await client.get_value("k")
        error: EtcdTLSError = caught.exception
        self.assertIn(words, str(error))
        return error

    async def test_works_with_ca_and_client_cert(self) -> None:
        """A client with the CA and a client certificate writes and reads, by IP and by name."""
        await self._ready()
        await self.good().set("k", "v")
        self.assertEqual(await self.good().get_value("k"), "v")
        by_name = self.client(
            f"https://localhost:{self.etcd.port}",
            ca=self.files.ca,
            cert=self.files.client_cert,
            key=self.files.client_key,
        )
        self.assertEqual(await by_name.get_value("k"), "v")

    async def test_encrypted_key_with_passphrase(self) -> None:
        """An encrypted client key works with its passphrase."""
        await self._ready()
        cert, key = self.ca.issue("client2", server=False).write(
            self.dir, "enc", passphrase=b"s3cret"
        )
        self.assertIn(b"ENCRYPTED", key.read_bytes())
        client = self.client(ca=self.files.ca, cert=cert, key=key, passphrase="s3cret")
        await client.set("k2", "v2")
        self.assertEqual(await client.get_value("k2"), "v2")

    async def test_pkcs12_client_cert(self) -> None:
        """A client certificate given as a PKCS#12 bundle with its password works; a wrong
        password is a ValueError when the client is created."""
        await self._ready()
        bundle = self.dir / "client.p12"
        bundle.write_bytes(self.ca.issue("client3", server=False).pkcs12(b"p12-pass"))
        client = self.client(ca=self.files.ca, cert=bundle, passphrase="p12-pass")
        await client.set("k3", "v3")
        self.assertEqual(await client.get_value("k3"), "v3")
        with self.assertRaises(ValueError) as caught:
            EtcdClient(
                self.etcd.url, reactor=reactor, ca=self.files.ca, cert=bundle, passphrase="x"
            )
        self.assertIn("PKCS#12", str(caught.exception))
        self.assertNotIn("p12-pass", str(caught.exception))

    async def test_without_client_cert(self) -> None:
        """Without a client certificate the request fails at once with EtcdTLSError."""
        await self._ready()
        await self._fails(self.client(ca=self.files.ca), "client certificate")

    async def test_wrong_ca(self) -> None:
        """A server certificate from an untrusted CA fails with EtcdTLSError."""
        await self._ready()
        other = self.dir / "other-ca.crt"
        other.write_bytes(CertificateAuthority("other").cert_pem)
        client = self.client(ca=other, cert=self.files.client_cert, key=self.files.client_key)
        await self._fails(client, "not trusted")

    async def test_foreign_client_cert(self) -> None:
        """A client certificate from another CA is refused with EtcdTLSError."""
        await self._ready()
        cert, key = CertificateAuthority("other").issue("x", server=False).write(self.dir, "x")
        await self._fails(self.client(ca=self.files.ca, cert=cert, key=key), "refused")

    async def test_plain_http_to_tls_port(self) -> None:
        """Plain http:// to the TLS port fails with EtcdTLSError telling to use https://."""
        await self._ready()
        client = self.client(f"http://127.0.0.1:{self.etcd.port}")
        error = await self._fails(client, "https://")
        self.assertIn("serves TLS", str(error))

    async def test_not_retried_on_other_members(self) -> None:
        """A TLS error on the first member is raised at once, not tried on the others."""
        await self._ready()
        client = self.client([self.etcd.url, "https://127.0.0.1:1"], ca=self.files.ca)
        error = await self._fails(client, "client certificate")
        self.assertEqual(error.endpoint, self.etcd.url)


class HostnameMismatchTests(TestCase):
    """
    An etcd whose certificate names another host.
    """

    timeout = 300

    async def test_hostname_mismatch(self) -> None:
        """A certificate for another name fails with EtcdTLSError naming the host problem."""
        directory = temp_dir(self, "txetcd2-certs-")
        files = write_tls_files(directory, server_dns=["etcd.example"], server_ips=[])
        etcd = start_etcd(self, "https", files.etcd_args())
        options = {"ca": files.ca, "cert": files.client_cert, "key": files.client_key}
        unverified = EtcdClient(etcd.url, reactor=reactor, verify=False)
        self.addCleanup(unverified.close)
        client = EtcdClient(etcd.url, reactor=reactor, **options)  # type: ignore[arg-type]
        self.addCleanup(client.close)
        # verify=False still needs the client certificate for --client-cert-auth
        mtls_unverified = EtcdClient(
            etcd.url,
            reactor=reactor,
            verify=False,
            cert=files.client_cert,
            key=files.client_key,
        )
        self.addCleanup(mtls_unverified.close)
        await etcd.wait_ready(mtls_unverified)
        with self.assertRaises(EtcdTLSError) as caught:
            await client.get_value("k", None)
        self.assertIn("not valid for this host", str(caught.exception))
        self.assertEqual(await mtls_unverified.get_value("nothing", "default"), "default")
