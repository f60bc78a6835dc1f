"""
A compare-and-swap retry loop: several workers increment one counter without losing an update.

Run: python examples/cas_retry.py [ENDPOINTS]   (or set TXETCD2_ENDPOINTS)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import react

from txetcd2 import EtcdClient, KeyNotFound, NodeExist, TestFailed

WORKERS = 5
INCREMENTS = 10
KEY = "/examples/cas/counter"


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def increment(client: EtcdClient, key: str) -> int:
    """
    Add one to the counter at ``key`` (created at 0 if missing), retrying on conflicts.

    :returns: how many conflicts were retried.
    """
    conflicts = 0
    while True:
        try:
            current = await client.get(key, quorum=True)
        except KeyNotFound:
            try:
                await client.create(key, "1")
                return conflicts
            except NodeExist:
                conflicts += 1
                continue
        new = str(int(current.value or "0") + 1)
        try:
            # Succeeds only if nobody changed the key since we read it.
            await client.compare_and_swap(key, new, prev_index=current.index)
            return conflicts
        except TestFailed:
            conflicts += 1


async def worker(client: EtcdClient) -> int:
    conflicts = 0
    for _ in range(INCREMENTS):
        conflicts += await increment(client, KEY)
    return conflicts


async def main(reactor: Any, urls: str) -> None:
    client = EtcdClient(urls, reactor=reactor)
    try:
        await client.delete(KEY, missing_ok=True)
        results = await gatherResults(
            [Deferred.fromCoroutine(worker(client)) for _ in range(WORKERS)]
        )
        final = await client.get_value(KEY)
        expected = WORKERS * INCREMENTS
        print(f"counter = {final} (expected {expected}), {sum(results)} conflicts retried")
        await client.delete(KEY)
    finally:
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv)])
