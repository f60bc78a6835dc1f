"""
The blocking facade: etcd from plain threaded code, without writing any Twisted.

``BlockingEtcdClient`` runs Twisted in a background thread (crochet) and blocks the calling
thread until each answer arrives; errors are the same exceptions as with ``EtcdClient``.

Run: python examples/blocking.py [ENDPOINTS]   (or set TXETCD2_ENDPOINTS)
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from txetcd2 import KeyNotFound
from txetcd2.blocking import BlockingEtcdClient


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


def main(urls: str) -> None:
    with BlockingEtcdClient(urls, timeout=5.0) as client:
        client.set("/examples/blocking/config", "v1")
        print("config:", client.get_value("/examples/blocking/config"))
        try:
            client.get("/examples/blocking/missing")
        except KeyNotFound:
            print("missing key raises KeyNotFound")

        # One client, many threads.
        def put(i: int) -> int:
            return client.set(f"/examples/blocking/items/{i}", str(i * i)).index

        with ThreadPoolExecutor(max_workers=4) as pool:
            indexes = list(pool.map(put, range(8)))
        print(f"{len(indexes)} writes from 4 threads")
        items = client.get("/examples/blocking/items", recursive=True).node.leaves()
        print("items:", ", ".join(f"{k.rsplit('/', 1)[1]}={v}" for k, v in sorted(items.items())))
        client.delete("/examples/blocking", recursive=True)


if __name__ == "__main__":
    main(endpoints(sys.argv))
