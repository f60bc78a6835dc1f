"""
A fair distributed lock: three workers take turns, each holding the lock while it updates a
shared value, and each write is guarded by the lock's fencing token.

Run: python examples/recipe_lock.py [ENDPOINTS]   (or set TXETCD2_ENDPOINTS)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater, react

from txetcd2 import EtcdClient
from txetcd2.recipes import Lock, LockNotAcquired

COUNTER = "/examples/lock/counter"


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def worker(reactor: Any, client: EtcdClient, name: str, rounds: int) -> list[int]:
    tokens = []
    lock = Lock(client, "examples/counter", ttl=10)
    lock.lost.addCallback(lambda why: print(f"{name}: lock lost ({why})"))
    for _ in range(rounds):
        async with lock:  # waits for its turn (first come, first served)
            token = lock.token
            assert token is not None
            value = int(await client.get_value(COUNTER, "0"))
            await deferLater(reactor, 0.01)  # the lock makes this read-modify-write safe
            await client.set(COUNTER, str(value + 1))
            tokens.append(token)
    return tokens


async def main(reactor: Any, urls: str) -> None:
    client = EtcdClient(urls, reactor=reactor)
    try:
        await client.set(COUNTER, "0")
        workers = [worker(reactor, client, f"worker-{i}", 5) for i in range(3)]
        results = await gatherResults([Deferred.fromCoroutine(w) for w in workers])
        print(f"counter = {await client.get_value(COUNTER)} (expected 15)")
        tokens = sorted(t for ts in results for t in ts)
        print(f"15 holdings, {len(set(tokens))} distinct fencing tokens")
        holder, other = Lock(client, "examples/busy"), Lock(client, "examples/busy")
        await holder.acquire()
        try:
            await other.acquire(blocking=False)
        except LockNotAcquired as e:
            print(f"non-blocking try refused: {e}")
        await holder.release()
        await client.delete("/examples/lock", recursive=True)
    finally:
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv)])
