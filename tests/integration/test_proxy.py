"""
The client through a real HTTP proxy (Debian's tinyproxy, started by the
tests): absolute-form requests to http members, CONNECT tunnels with TLS
verified end to end to https members.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.integration._single_etcd import free_port, reactor, start_etcd, temp_dir
from tests.integration.test_pool import on_the_pool
from txetcd2 import EtcdClient, EtcdConnectionError, EtcdTLSError
from txetcd2._embedded.certificates import CertificateAuthority, TLSFiles, write_tls_files

TINYPROXY = "/usr/bin/tinyproxy"


class Tinyproxy:
    """
    One tinyproxy on a free loopback port, logging every request.

    :param directory: where its configuration and log go.
    :param connect_ports: the only ports CONNECT may reach (default: any).
    """

    def __init__(self, directory: Path, connect_ports: Sequence[int] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "tinyproxy.log"
        config = directory / "tinyproxy.conf"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            f'LogFile "{self.log_path}"',
            "LogLevel Info",
            "MaxClients 50",
            "Allow 127.0.0.1",
            *(f"ConnectPort {port}" for port in connect_ports),
        ]
        config.write_text("\n".join(lines) + "\n")
        self._output = open(directory / "tinyproxy.out", "wb")  # noqa: SIM115
        self._process = subprocess.Popen(
            [TINYPROXY, "-d", "-c", str(config)], stdout=self._output, stderr=subprocess.STDOUT
        )

    async def wait_ready(self, deadline: float = 30.0) -> None:
        """
        Wait until the proxy accepts connections.

        :param deadline: seconds to give up after.
        :raises RuntimeError: when it exited or never listened.
        """
        give_up = reactor.seconds() + deadline
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"tinyproxy exited with {self._process.returncode}")
            try:
                protocol: Any = await endpoint.connect(Factory.forProtocol(Protocol))
            except Exception:
                if reactor.seconds() > give_up:
                    raise
                await deferLater(reactor, 0.1, lambda: None)
                continue
            assert protocol.transport is not None
            protocol.transport.loseConnection()
            return

    def log(self) -> str:
        """
        :returns: its log so far.
        """
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """
        Stop it and wait for it.
        """
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._output.close()


class ProxyTests(TestCase):
    """
    Plain and TLS etcd reached through tinyproxy.
    """

    timeout = 300

    def setUp(self) -> None:
        on_the_pool(self)  # proxies need the agent pool

    async def proxy(self, connect_ports: Sequence[int] = ()) -> Tinyproxy:
        proxy = Tinyproxy(temp_dir(self, "txetcd2-proxy-"), connect_ports)
        self.addCleanup(proxy.stop)
        await proxy.wait_ready()
        return proxy

    def client(self, url: str, **options: object) -> EtcdClient:
        client = EtcdClient(url, reactor=reactor, max_retries=0, **options)  # type: ignore[arg-type]
        self.addCleanup(client.close)
        return client

    async def test_http_member(self) -> None:
        """Sets and gets to an http member go through the proxy in absolute form."""
        etcd = start_etcd(self, "http")
        proxy = await self.proxy()
        await etcd.wait_ready(self.client(etcd.url))
        client = self.client(etcd.url, proxy=proxy.url)
        for i in range(10):
            await client.set(f"proxied/k{i}", f"v{i}")
            self.assertEqual(await client.get_value(f"proxied/k{i}"), f"v{i}")
        self.assertIn(f"GET {etcd.url}/v2/keys/proxied/k9", proxy.log())
        self.assertIn(f"PUT {etcd.url}/v2/keys/proxied/k9", proxy.log())

    async def tls_etcd(self) -> tuple[str, TLSFiles]:
        files = write_tls_files(temp_dir(self, "txetcd2-proxy-certs-"), CertificateAuthority())
        etcd = start_etcd(self, "https", files.etcd_args())
        direct = self.client(etcd.url, ca=files.ca, cert=files.client_cert, key=files.client_key)
        await etcd.wait_ready(direct)
        return etcd.url, files

    async def test_https_member_through_connect(self) -> None:
        """An https member is reached through a CONNECT tunnel, with TLS and the
        client certificate end to end."""
        url, files = await self.tls_etcd()
        proxy = await self.proxy()
        client = self.client(
            url, proxy=proxy.url, ca=files.ca, cert=files.client_cert, key=files.client_key
        )
        await client.set("tunnel/k", "v")
        self.assertEqual(await client.get_value("tunnel/k"), "v")
        self.assertIn(f"CONNECT {url.removeprefix('https://')}", proxy.log())

    async def test_https_verified_end_to_end(self) -> None:
        """Through the tunnel the member's certificate is still checked: an
        untrusted CA fails with EtcdTLSError."""
        url, files = await self.tls_etcd()
        proxy = await self.proxy()
        other = temp_dir(self, "txetcd2-proxy-other-") / "other-ca.crt"
        other.write_bytes(CertificateAuthority("other").cert_pem)
        client = self.client(
            url, proxy=proxy.url, ca=other, cert=files.client_cert, key=files.client_key
        )
        with self.assertRaises(EtcdTLSError) as caught:
            await client.get_value("tunnel/k")
        self.assertIn("not trusted", str(caught.exception))
        self.assertIn("CONNECT", proxy.log())

    async def test_tunnel_refused(self) -> None:
        """A proxy that refuses CONNECT to the member's port fails the request with
        an EtcdConnectionError saying so."""
        url, files = await self.tls_etcd()
        proxy = await self.proxy(connect_ports=[443])
        client = self.client(
            url, proxy=proxy.url, ca=files.ca, cert=files.client_cert, key=files.client_key
        )
        with self.assertRaises(EtcdConnectionError) as caught:
            await client.get_value("tunnel/k")
        self.assertIn("did not open a tunnel", str(caught.exception))
