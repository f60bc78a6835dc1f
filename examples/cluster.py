"""
A cluster with several endpoints: the client tries the member that last answered first and
fails over to the others when a member cannot be reached.

Run: python examples/cluster.py URL1,URL2,URL3   (or set TXETCD2_ENDPOINTS)

Put an unreachable URL first (e.g. ``http://127.0.0.1:1,http://127.0.0.1:2379``) to see a
failover.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import react

from txetcd2 import ClusterUnavailable, EtcdClient, EtcdConnectionError


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def main(reactor: Any, urls: str) -> None:
    # A short timeout so that a silent member is given up on quickly.
    client = EtcdClient(urls, reactor=reactor, timeout=2.0)
    print("members:", ", ".join(client.endpoints))
    try:
        # Reads are idempotent: they fail over to the next member at once.
        await client.set("/examples/cluster/key", "value")
        response = await client.get("/examples/cluster/key", quorum=True)
        print(f"read {response.node.key} = {response.value} (raft term {response.raft_term})")
        await client.delete("/examples/cluster/key")
        print("ok")
    except ClusterUnavailable as e:
        print("no member answered:", e)
        raise
    except EtcdConnectionError as e:
        print("the member could not be reached:", e)
        raise
    finally:
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv)])
