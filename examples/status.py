"""
Print a cluster's status for people: each member reachable or not, leader or
not, its version, and the cluster's health.

    python examples/status.py http://127.0.0.1:2379
    TXETCD2_ENDPOINTS=http://127.0.0.1:2379 python examples/status.py
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import react

from txetcd2 import EtcdClient


async def main(reactor: Any) -> None:
    """
    Print the status; exit 1 when the cluster is unhealthy.

    :param reactor: the reactor, from :func:`react`.
    """
    if len(sys.argv) > 1:
        endpoints = sys.argv[1]
    else:
        endpoints = os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    client = EtcdClient(endpoints, reactor=reactor)
    try:
        status = await client.cluster_status()
    finally:
        await client.close()
    print(status)
    if not status.healthy:
        raise SystemExit(1)


if __name__ == "__main__":
    react(main)
