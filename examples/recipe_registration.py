"""
Service registration: keep ``/examples/services/web/<addr>`` alive with a TTL while the process
runs (re-created after a partition), and list the registered instances with a Mirror.

Run: python examples/recipe_registration.py [ENDPOINTS] [SECONDS]
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import deferLater, react

from txetcd2 import EtcdClient
from txetcd2.recipes import Mirror, ServiceRegistration

PREFIX = "/examples/services/web"


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def main(reactor: Any, urls: str, seconds: float) -> None:
    client = EtcdClient(urls, reactor=reactor)
    instances = Mirror(client, PREFIX)
    instances.on("change", lambda key, old, new: print(f"{key}: {old} -> {new}", flush=True))
    instances.start()
    await instances.ready
    registrations = [
        ServiceRegistration(client, f"{PREFIX}/10.0.0.{i}:8080", "up", ttl=3) for i in (7, 8)
    ]
    for registration in registrations:
        registration.startService()
    try:
        await deferLater(reactor, seconds)  # longer than the TTL: kept alive by refreshes
        print(f"registered after {seconds}s: {sorted(instances)}", flush=True)
    finally:
        for registration in registrations:
            await registration.stopService()
        await deferLater(reactor, 0.5)
        print(f"after stop: {sorted(instances)}", flush=True)
        await instances.stop()
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv), float(sys.argv[2]) if len(sys.argv) > 2 else 4.0])
