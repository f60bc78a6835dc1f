"""
Quorum reads in flight, pipelined or not: ``python -m bench._quorum [ROUNDS] [DATA_ROOT]``.

Starts a three-member etcd (``txetcd2.testing.EtcdCluster``, its data in
``DATA_ROOT``, default the system's temporary directory: on disk, as a
cluster keeps it) and, in alternating rounds, makes 3,000 ``get(quorum=True)``
calls with 64 in flight on the default client: as the agent pool sends them
(each on a connection of its own, as writes), and as it sent them before
quorum reads were kept out of pipelining (emulated by building the pool's
requests without their ``alone`` flag). etcd answers a quorum read
through its raft log and answers one connection's requests one at a time,
so pipelined quorum reads wait for each other's commits. Prints quorum
reads per second for each, and stops the cluster.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.python.failure import Failure

GETS = 3000
IN_FLIGHT = 64


def _pipelined_request() -> type[Any]:
    from txetcd2._transport.request import PendingRequest

    class Pipelined(PendingRequest):
        """A pool request built without ``alone``, as before the change."""

        __slots__ = ()

        def __init__(self, *args: Any) -> None:
            super().__init__(*args[:7])

    return Pipelined


async def quorum_reads(reactor: Any, url: str, pipelined: bool) -> float:
    """
    :returns: quorum reads per second, ``IN_FLIGHT`` at a time.
    """
    from txetcd2 import EtcdClient
    from txetcd2._transport.request import PendingRequest

    pool: Any = importlib.import_module("txetcd2._transport.pool")
    pool.PendingRequest = _pipelined_request() if pipelined else PendingRequest
    client = EtcdClient(url, reactor=reactor)
    try:
        await client.set("bench/quorum", "v")
        left = GETS

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await client.get("bench/quorum", quorum=True)

        start = time.perf_counter()
        await gatherResults([Deferred.fromCoroutine(worker()) for _ in range(IN_FLIGHT)])
        return GETS / (time.perf_counter() - start)
    finally:
        pool.PendingRequest = PendingRequest
        await client.close()


async def measure(reactor: Any, rounds: int, data_root: str | None) -> None:
    """
    Start the cluster, run the rounds, print each figure, stop the cluster.
    """
    from txetcd2.testing import EtcdCluster

    cluster = EtcdCluster(3, reactor=reactor, data_root=data_root)
    await cluster.start()
    try:
        await cluster.wait_for_leader()
        url = cluster.client_urls[0]
        for r in range(rounds):
            for pipelined in (True, False):
                ops = await quorum_reads(reactor, url, pipelined)
                how = "pipelined (before)" if pipelined else "own connections"
                print(f"round {r + 1}: {how:20} {ops:7.0f} quorum reads/s", flush=True)
    finally:
        await cluster.stop()


def main(argv: list[str]) -> None:
    """
    :param argv: optionally the number of rounds (default 3) and the data root.
    """
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    rounds = int(argv[0]) if argv else 3
    data_root = argv[1] if len(argv) > 1 else None
    failed: list[Failure] = []
    done = Deferred.fromCoroutine(measure(reactor, rounds, data_root))
    done.addErrback(failed.append)
    done.addBoth(lambda _: reactor.stop())
    reactor.run()
    if failed:
        raise SystemExit(f"bench._quorum failed: {failed[0].getTraceback()}")


if __name__ == "__main__":
    main(sys.argv[1:])
