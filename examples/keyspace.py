"""
Key-space basics: set, get, update, create, list a directory, delete.

Run: python examples/keyspace.py [http://127.0.0.1:2379[,URL...]]
(or set TXETCD2_ENDPOINTS).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import react

from txetcd2 import EtcdClient, KeyNotFound, NodeExist


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def main(reactor: Any, urls: str) -> None:
    client = EtcdClient(urls, reactor=reactor)
    try:
        await client.delete("/examples/keyspace", recursive=True, missing_ok=True)

        response = await client.set("/examples/keyspace/greeting", "hello")
        print(f"set {response.node.key} = {response.value} at index {response.index}")

        print("get:", await client.get_value("/examples/keyspace/greeting"))

        response = await client.update("/examples/keyspace/greeting", "hello again")
        before = response.prev_node.value if response.prev_node else None
        print(f"update: {before!r} -> {response.value!r}")

        try:
            await client.create("/examples/keyspace/greeting", "never")
        except NodeExist as e:
            print("create refused:", e.cause)

        await client.set("/examples/keyspace/colors/sky", "blue")
        await client.set("/examples/keyspace/colors/grass", "green")
        listing = await client.get("/examples/keyspace", recursive=True, sorted=True)
        for key, value in sorted(listing.node.leaves().items()):
            print(f"  {key} = {value}")

        print("missing with default:", await client.get_value("/examples/keyspace/nope", "n/a"))
        try:
            await client.get("/examples/keyspace/nope")
        except KeyNotFound:
            print("get of a missing key raises KeyNotFound")

        await client.delete("/examples/keyspace", recursive=True)
        print("deleted /examples/keyspace")
    finally:
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv)])
