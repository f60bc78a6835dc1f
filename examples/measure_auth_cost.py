"""
Roughly measure what basic auth costs per request on etcd (bcrypt on the server).

Starts a throw-away etcd (TLS, /usr/bin/etcd), times sequential reads over one
pooled connection without auth, then with auth enabled, and prints both.
Run: ``python examples/measure_auth_cost.py``.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

from txetcd2 import EtcdClient
from txetcd2._embedded.certificates import write_tls_files

COUNT = 50


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _time_reads(reactor: Any, client: EtcdClient) -> float:
    await client.get("/k")  # open the pooled connection first
    start = time.perf_counter()
    for _ in range(COUNT):
        await client.get("/k")
    return (time.perf_counter() - start) / COUNT * 1000


async def main(reactor: Any) -> None:
    directory = Path(tempfile.mkdtemp(prefix="txetcd2-measure-"))
    files = write_tls_files(directory)
    client_port, peer = _port(), _port()
    url, peer_url = f"https://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer}"
    process = subprocess.Popen(
        [
            "/usr/bin/etcd",
            "--name=m",
            f"--data-dir={directory / 'data'}",
            "--enable-v2=true",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=m={peer_url}",
            *files.etcd_args(client_cert_auth=False),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    anonymous = EtcdClient(url, reactor=reactor, ca=files.ca)
    root = EtcdClient(url, reactor=reactor, ca=files.ca, username="root", password="pw")
    try:
        for _ in range(300):
            try:
                await anonymous.set("/k", "v")
                break
            except Exception:
                await task.deferLater(reactor, 0.1, lambda: None)
        plain = await _time_reads(reactor, anonymous)
        await anonymous.auth.create_user("root", "pw")
        await anonymous.auth.enable()
        authed = await _time_reads(reactor, root)
        await root.auth.disable()
        print(f"{COUNT} sequential reads over one pooled TLS connection:")
        print(f"  without auth: {plain:.1f} ms per request")
        print(f"  with auth:    {authed:.1f} ms per request (+{authed - plain:.1f} ms)")
    finally:
        await anonymous.close()
        await root.close()
        process.terminate()
        process.wait()


if __name__ == "__main__":
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
