"""
Leader election: run several copies; one is elected, the others wait. Stop the leader (Ctrl-C)
and another takes over within a second; kill it (-9) and another takes over within the TTL.

Run: python examples/recipe_election.py [ENDPOINTS] [NAME] [SECONDS]
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import deferLater, react

from txetcd2 import EtcdClient
from txetcd2.recipes import LeaderElection


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def main(reactor: Any, urls: str, name: str, seconds: float) -> None:
    client = EtcdClient(urls, reactor=reactor)
    election = LeaderElection(client, "examples/scheduler", name, ttl=5)
    election.on("elected", lambda token: print(f"{name}: elected (token {token})", flush=True))
    election.on("deposed", lambda why: print(f"{name}: deposed ({why})", flush=True))
    election.startService()
    try:
        await deferLater(reactor, 1.0)
        print(f"leader now: {await election.leader()}", flush=True)
        await election.resign()
        await deferLater(reactor, 2.0)
        print(f"leader after resign: {await election.leader()}", flush=True)
        await deferLater(reactor, seconds)
    finally:
        await election.stopService()
        print(f"{name}: stopped; leader: {await election.leader()}", flush=True)
        await client.close()


if __name__ == "__main__":
    argv = sys.argv
    react(
        main,
        [
            endpoints(argv),
            argv[2] if len(argv) > 2 else f"candidate-{os.getpid()}",
            float(argv[3]) if len(argv) > 3 else 0.0,
        ],
    )
