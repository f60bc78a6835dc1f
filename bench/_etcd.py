"""
A throw-away single-member etcd on loopback, for the benchmark only.

Uses :func:`txetcd2.testing.running_etcd` when the harness is installed;
otherwise starts ``etcd`` itself, in a temporary directory, and always
stops what it started.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _raise_nofile() -> None:
    """
    In the etcd child: raise the soft ``RLIMIT_NOFILE`` to the hard limit.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


#: Where etcd's data directory goes by default: a tmpfs when there is one.
MEMORY_DIR = "/dev/shm"


def data_parent(choice: str | None = None) -> str | None:
    """
    The directory etcd's data directory is made in.

    :param choice: a directory; ``None`` for :data:`MEMORY_DIR` when it
        exists (a set's time is then the clients' and etcd's work, not the
        disk's ``fsync``, which other processes' writes make vary several
        times over on shared machines), else the system's temporary directory.
    :returns: the directory (``None``: the system's temporary directory).
    """
    if choice is not None:
        return choice
    return MEMORY_DIR if os.path.isdir(MEMORY_DIR) and os.access(MEMORY_DIR, os.W_OK) else None


@contextlib.contextmanager
def running_etcd(
    binary: str = "etcd", deadline: float = 30.0, parent: str | None = None
) -> Iterator[str]:
    """
    Run one etcd member with the v2 API on 127.0.0.1 for the ``with`` block.

    :param binary: the etcd executable.
    :param deadline: seconds to wait for it to answer.
    :param parent: where its data directory goes (see :func:`data_parent`).
    :returns: (yields) the client URL.
    :raises RuntimeError: when etcd does not come up in time.
    """
    with _running(binary, deadline, False, parent) as (url, _):
        yield url


@contextlib.contextmanager
def running_tls_etcd(
    binary: str = "etcd", deadline: float = 30.0, parent: str | None = None
) -> Iterator[tuple[str, str]]:
    """
    Run one etcd member serving its clients over TLS (no client certificates).

    :param binary: the etcd executable.
    :param deadline: seconds to wait for it to answer.
    :param parent: where its data directory goes (see :func:`data_parent`).
    :returns: (yields) the ``https://`` client URL and the path of its CA certificate.
    :raises RuntimeError: when etcd does not come up in time.
    """
    with _running(binary, deadline, True, parent) as (url, ca):
        assert ca is not None
        yield url, ca


def tls_context(ca: str | None) -> ssl.SSLContext | None:
    """
    :returns: a client TLS context trusting ``ca``, or ``None`` without one.
    """
    return None if ca is None else ssl.create_default_context(cafile=ca)


@contextlib.contextmanager
def _running(
    binary: str, deadline: float, tls: bool, parent: str | None
) -> Iterator[tuple[str, str | None]]:
    path = shutil.which(binary) or "/usr/bin/etcd"
    data = tempfile.mkdtemp(prefix="txetcd2-bench-", dir=parent)
    client, peer = _free_port(), _free_port()
    url = f"{'https' if tls else 'http'}://127.0.0.1:{client}"
    ca: str | None = None
    extra: list[str] = []
    if tls:
        from txetcd2._embedded.certificates import write_tls_files

        files = write_tls_files(Path(data))
        ca = str(files.ca)
        extra = files.etcd_args(client_cert_auth=False)
    log = open(os.path.join(data, "etcd.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            path,
            "--name=bench",
            f"--data-dir={data}/data",
            "--enable-v2=true",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=bench=http://127.0.0.1:{peer}",
            "--log-level=error",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_raise_nofile,  # workload E: 10,000+ connections
    )
    try:
        end = time.monotonic() + deadline
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {proc.returncode}; see {data}/etcd.log")
            try:
                with urllib.request.urlopen(
                    url + "/v2/keys/", timeout=1, context=tls_context(ca)
                ) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"etcd did not answer within {deadline}s")
            time.sleep(0.1)
        yield url, ca
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
