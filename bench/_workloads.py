"""
One worker run: one client, one workload, in its own process.

``python -m bench._workloads CLIENT WORKLOAD URL N INFLIGHT PREFIX`` prints
one JSON line with the figures. Each client runs in a fresh process so that
its CPU time (``time.process_time``) is its own and event loops don't mix.

Clients: ``txetcd2``, ``agent`` (a plain Twisted ``Agent`` loop, the
reference for what Twisted itself costs), ``treq`` (treq's default
``HTTPClient`` over the same pool, for the treq overhead), ``python-etcd``
and ``aio_etcd``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from bench._stats import Result

Call = Callable[[int], Awaitable[Any]]


async def _sequential(set_: Call, get: Call, n: int) -> Result:
    result = Result()
    for _ in range(3):  # warm the connection up
        await get(-1)
    for phase, call in (("set", set_), ("get", get)):
        lat: list[float] = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            await call(i)
            lat.append(time.perf_counter() - s)
        result.add(phase, n, time.perf_counter() - t0, time.process_time() - cpu0, lat)
    return result


async def _parallel(get: Call, n: int, inflight: int) -> Result:
    from twisted.internet.defer import Deferred, gatherResults

    await gatherResults([Deferred.fromCoroutine(_ensure(get(0))) for _ in range(inflight)])
    left = n
    lat: list[float] = []

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            s = time.perf_counter()
            await get(0)
            lat.append(time.perf_counter() - s)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await gatherResults([Deferred.fromCoroutine(worker()) for _ in range(inflight)])
    result = Result()
    result.add("get", n, time.perf_counter() - t0, time.process_time() - cpu0, lat)
    return result


async def _ensure(a: Awaitable[Any]) -> Any:
    return await a


def _twisted_calls(client: str, reactor: Any, url: str, prefix: str, key: str) -> Any:
    """
    Build (set, get, close) for a Twisted client; ``get(i)`` reads
    ``prefix/i`` (or ``key`` for ``i == 0`` in workload C, ``i == -1`` for the warm-up).
    """
    from twisted.web.client import Agent, HTTPConnectionPool, readBody
    from twisted.web.http_headers import Headers

    from txetcd2._transport.agent import BytesProducer

    def name(i: int) -> str:
        return key if i <= 0 else f"{prefix}/{i}"

    if client.startswith("txetcd2"):
        etcd, closing = _txetcd2_client(client, reactor, url)

        async def set_(i: int) -> Any:
            return await etcd.set(name(i), f"v{i}")

        async def get(i: int) -> Any:
            return await etcd.get(name(i))

        return set_, get, closing

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 64
    pool.retryAutomatically = False
    agent: Any = Agent(reactor, pool=pool)
    close: Callable[[], Any] = pool.closeCachedConnections
    if client == "pool":
        from txetcd2._transport.pool import EtcdAgent

        agent = EtcdAgent(reactor)
        client, close = "agent", agent.closeCachedConnections
    base = url.encode("ascii") + b"/v2/keys/"
    form = Headers({b"content-type": [b"application/x-www-form-urlencoded"]})

    if client == "agent":

        async def set_(i: int) -> Any:
            body = f"value=v{i}".encode("ascii")
            response = await agent.request(
                b"PUT", base + name(i).encode("ascii"), form, BytesProducer(body)
            )
            return json.loads(await readBody(response))

        async def get(i: int) -> Any:
            response = await agent.request(b"GET", base + name(i).encode("ascii"))
            return json.loads(await readBody(response))

        return set_, get, close

    if client == "treq":
        from treq.client import HTTPClient

        http = HTTPClient(agent)
        text = url + "/v2/keys/"

        async def set_(i: int) -> Any:
            response = await http.put(text + name(i), data={"value": f"v{i}"})
            return await response.json()

        async def get(i: int) -> Any:
            response = await http.get(text + name(i))
            return await response.json()

        return set_, get, pool.closeCachedConnections

    raise SystemExit(f"unknown Twisted client {client!r}")


def _txetcd2_client(client: str, reactor: Any, url: str) -> tuple[Any, Callable[[], Any]]:
    """
    The ``EtcdClient`` of a txetcd2 row and what closes it: ``txetcd2`` (its
    default agent: the pool, pipelining reads 16 deep), ``txetcd2-twisted``
    (Twisted's ``Agent``, the fallback without httptools) or
    ``txetcd2-unpipelined`` (the pool without pipelining;
    ``BENCH_PIPELINE_DEPTH`` sets another depth).
    """
    from txetcd2 import EtcdClient
    from txetcd2._transport.default import default_agent

    if client == "txetcd2":
        etcd = EtcdClient(url, reactor=reactor, ca=os.environ.get("BENCH_CA"))
        return etcd, etcd.close
    if client == "txetcd2-twisted":
        agent, close = default_agent(reactor, None, 5.0, 64, pool=False)
    elif client == "txetcd2-unpipelined":
        from txetcd2._transport.pool import EtcdAgent

        depth = int(os.environ.get("BENCH_PIPELINE_DEPTH", "1"))
        pipelined = EtcdAgent(reactor, None, 5.0, pipeline_depth=depth)
        agent, close = pipelined, pipelined.closeCachedConnections
    else:
        raise SystemExit(f"unknown txetcd2 client {client!r}")
    etcd = EtcdClient(url, reactor=reactor, agent=agent)

    async def closing() -> None:
        await etcd.close()
        await close()

    return etcd, closing


def _run_twisted(client: str, workload: str, url: str, n: int, inflight: int, prefix: str) -> Any:
    from twisted.internet import reactor as _reactor
    from twisted.internet.defer import Deferred

    reactor: Any = _reactor

    key = prefix.rsplit("/", 1)[0] + "/c" if workload == "C" else f"{prefix}/0"
    out: dict[str, Any] = {}

    async def main() -> None:
        if workload == "D":
            from bench._watch import watch_while_writing

            out.update(await watch_while_writing(reactor, url, n, inflight, prefix))
            return
        set_, get, close = _twisted_calls(client, reactor, url, prefix, key)
        try:
            if workload == "B":
                await set_(0)
                out.update((await _sequential(set_, get, n)).to_json())
            else:
                out.update((await _parallel(get, n, inflight)).to_json())
        finally:
            await close()

    failures: list[Any] = []

    def done(result: object) -> None:
        if hasattr(result, "getTraceback"):
            failures.append(result)
        reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(main()).addBoth(done))
    reactor.run()
    if failures:
        raise SystemExit(failures[0].getTraceback())
    return out


def measure(client: str, workload: str, url: str, n: int, inflight: int, prefix: str) -> Any:
    """
    Run one client through one workload.

    :returns: the figures by phase.
    """
    if client == "python-etcd":
        from bench import _peers

        if workload != "B":
            raise SystemExit("python-etcd is blocking: workload B only")
        return _peers.python_etcd_b(url, n, prefix).to_json()
    if client == "aio_etcd":
        from bench import _peers

        if workload == "B":
            return _peers.aio_etcd_b(url, n, prefix).to_json()
        return _peers.aio_etcd_c(url, n, inflight, prefix.rsplit("/", 1)[0] + "/c").to_json()
    return _run_twisted(client, workload, url, n, inflight, prefix)


def main(argv: list[str]) -> None:
    """
    The worker's entry point; with ``BENCH_PROFILE=file`` set, the run is
    profiled with cProfile into that file.

    :param argv: client, workload, url, n, inflight, prefix.
    """
    client, workload, url, n, inflight, prefix = argv
    warnings.simplefilter("ignore", DeprecationWarning)
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        figures = profiler.runcall(measure, client, workload, url, int(n), int(inflight), prefix)
        profiler.dump_stats(profile)
    else:
        figures = measure(client, workload, url, int(n), int(inflight), prefix)
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1:7])
