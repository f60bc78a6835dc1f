"""
A single real etcd for the TLS and auth tests (until the shared harness lands).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txetcd2 import EtcdTLSError

reactor: Any = _reactor


def free_port() -> int:
    """
    Pick a free loopback port.

    :returns: the port.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SingleEtcd:
    """
    One etcd process with the v2 API, plain or TLS on its client port.

    :param directory: its data directory's parent.
    :param scheme: ``http`` or ``https``.
    :param extra_args: more etcd flags (TLS files...).
    """

    def __init__(self, directory: Path, scheme: str, extra_args: Sequence[str] = ()) -> None:
        client, peer = free_port(), free_port()
        self.url = f"{scheme}://127.0.0.1:{client}"
        self.port = client
        peer_url = f"http://127.0.0.1:{peer}"
        self._log_path = directory / "etcd.log"
        self._directory = directory
        self._log = open(self._log_path, "wb")  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                "/usr/bin/etcd",
                "--name=t",
                f"--data-dir={directory / 'data'}",
                "--enable-v2=true",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=t={peer_url}",
                *extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, client: Any, deadline: float = 90.0) -> None:
        """
        Wait until ``client`` can read from etcd (generous: the machine may be loaded).

        :param client: a client able to talk to this etcd.
        :param deadline: seconds to give up after.
        :raises RuntimeError: when etcd exited (with the end of its log).
        """
        give_up = reactor.seconds() + deadline
        while True:
            if self._process.poll() is not None:
                self._log.flush()
                tail = self._log_path.read_bytes()[-2000:].decode("utf-8", "replace")
                raise RuntimeError(f"etcd exited with {self._process.returncode}:\n{tail}")
            try:
                await client.get("/")
                return
            except EtcdTLSError:
                raise  # a configuration error: waiting will not help
            except Exception:
                if reactor.seconds() > give_up:
                    raise
            await deferLater(reactor, 0.2, lambda: None)

    def stop(self) -> None:
        """
        Stop etcd and wait for it.
        """
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        shutil.rmtree(self._directory, ignore_errors=True)


def temp_dir(case: TestCase, prefix: str) -> Path:
    """
    A temporary directory removed at the test's cleanup.

    :param case: the test.
    :param prefix: the directory name's prefix.
    :returns: its path.
    """
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    case.addCleanup(shutil.rmtree, directory, True)
    return directory


def start_etcd(case: TestCase, scheme: str, extra_args: Sequence[str] = ()) -> SingleEtcd:
    """
    Start an etcd for a test and stop it at cleanup.

    :param case: the test.
    :param scheme: ``http`` or ``https``.
    :param extra_args: more etcd flags.
    :returns: the running etcd (not ready yet: see :meth:`SingleEtcd.wait_ready`).
    """
    directory = Path(tempfile.mkdtemp(prefix="txetcd2-tls-"))
    etcd = SingleEtcd(directory, scheme, extra_args)
    case.addCleanup(etcd.stop)
    return etcd
