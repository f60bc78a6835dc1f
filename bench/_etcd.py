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
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator


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


@contextlib.contextmanager
def running_etcd(binary: str = "etcd", deadline: float = 30.0) -> Iterator[str]:
    """
    Run one etcd member with the v2 API on 127.0.0.1 for the ``with`` block.

    :param binary: the etcd executable.
    :param deadline: seconds to wait for it to answer.
    :returns: (yields) the client URL.
    :raises RuntimeError: when etcd does not come up in time.
    """
    path = shutil.which(binary) or "/usr/bin/etcd"
    data = tempfile.mkdtemp(prefix="txetcd2-bench-")
    client, peer = _free_port(), _free_port()
    url = f"http://127.0.0.1:{client}"
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
                with urllib.request.urlopen(url + "/v2/keys/", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"etcd did not answer within {deadline}s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
