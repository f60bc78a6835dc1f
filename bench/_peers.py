"""
The peers measured against txetcd2: python-etcd (blocking) and aio_etcd (asyncio).

Imported lazily, in the worker process of the peer being measured only.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from typing import Any
from urllib.parse import urlsplit

from bench._stats import Result, run_sequential_sync


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 2379


def python_etcd_b(url: str, n: int, prefix: str) -> Result:
    """
    Workload B with python-etcd: ``n`` sequential sets, then ``n`` gets.

    :param url: etcd's client URL.
    :param n: how many keys.
    :param prefix: the key prefix.
    :returns: the measurements.
    """
    etcd = importlib.import_module("etcd")
    host, port = _host_port(url)
    client = etcd.Client(host=host, port=port)
    return run_sequential_sync(
        lambda k, v: client.write(k, v),
        lambda k: client.read(k).value,
        n,
        prefix,
    )


def aio_etcd_client(url: str) -> Any:
    """
    An aio_etcd client on the running loop.

    :param url: etcd's client URL.
    :returns: the client.
    """
    aio_etcd = importlib.import_module("aio_etcd")
    host, port = _host_port(url)
    if url.startswith("https://"):  # workload C over TLS: the CA comes from the bench
        return aio_etcd.Client(
            host=host,
            port=port,
            protocol="https",
            ca_cert=os.environ["BENCH_CA"],
            loop=asyncio.get_running_loop(),
        )
    return aio_etcd.Client(host=host, port=port, loop=asyncio.get_running_loop())


async def _aio_b(url: str, n: int, prefix: str) -> Result:
    client = aio_etcd_client(url)
    result = Result()
    try:
        for phase, call in (
            ("set", lambda i: client.write(f"{prefix}/{i}", f"v{i}")),
            ("get", lambda i: client.read(f"{prefix}/{i}")),
        ):
            lat: list[float] = []
            cpu0, t0 = time.process_time(), time.perf_counter()
            for i in range(n):
                s = time.perf_counter()
                await call(i)
                lat.append(time.perf_counter() - s)
            result.add(phase, n, time.perf_counter() - t0, time.process_time() - cpu0, lat)
    finally:
        await client._client.close()
    return result


def aio_etcd_b(url: str, n: int, prefix: str) -> Result:
    """
    Workload B with aio_etcd.

    :param url: etcd's client URL.
    :param n: how many keys.
    :param prefix: the key prefix.
    :returns: the measurements.
    """
    return asyncio.run(_aio_b(url, n, prefix))


async def _aio_c(url: str, n: int, inflight: int, key: str) -> Result:
    client = aio_etcd_client(url)
    try:
        for _ in range(inflight):
            await client.read(key)
        left = n
        lat: list[float] = []

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                s = time.perf_counter()
                await client.read(key)
                lat.append(time.perf_counter() - s)

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        result = Result()
        result.add("get", n, time.perf_counter() - t0, time.process_time() - cpu0, lat)
        return result
    finally:
        await client._client.close()


def aio_etcd_c(url: str, n: int, inflight: int, key: str) -> Result:
    """
    Workload C with aio_etcd: ``n`` gets of one key, ``inflight`` at a time.

    :param url: etcd's client URL.
    :param n: how many gets.
    :param inflight: how many at a time.
    :param key: the key.
    :returns: the measurements.
    """
    return asyncio.run(_aio_c(url, n, inflight, key))
