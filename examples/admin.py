"""
Every administration call of txetcd2, one after the other.

Run it against a cluster::

    python examples/admin.py http://127.0.0.1:2379,http://127.0.0.1:22379
    TXETCD2_ENDPOINTS=http://127.0.0.1:2379 python examples/admin.py

With three or more members it also adds a member (that is never started)
and removes it again.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.internet.task import deferLater, react

from txetcd2 import EtcdClient, EtcdV2Disabled, Member, MemberChangeRefused, NoLeader


def endpoints(argv: list[str]) -> str:
    """
    The endpoints to use: the first argument, else ``TXETCD2_ENDPOINTS``.

    :param argv: the command line.
    :returns: a comma-separated list of client URLs.
    """
    if len(argv) > 1:
        return argv[1]
    return os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")


def unused_peer_url() -> str:
    """
    A loopback URL nobody listens on, for a member that will never start.

    :returns: the URL.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def add_member(reactor: Any, client: EtcdClient, tries: int = 30) -> Member:
    """
    Add a member that will never start, retrying while etcd refuses.

    etcd refuses membership changes until every member has been connected
    for 5 seconds, so right after a cluster starts this takes a few tries.

    :param reactor: the reactor, to wait between tries.
    :param client: the client.
    :param tries: how many times to try, a second apart.
    :returns: the new member.
    """
    for _ in range(tries - 1):
        try:
            return await client.add_member([unused_peer_url()])
        except MemberChangeRefused as e:
            print("add member refused, retrying:", e.message)
            await deferLater(reactor, 1.0)
    return await client.add_member([unused_peer_url()])


async def main(reactor: Any) -> None:
    """
    Call everything, printing what etcd says.

    :param reactor: the reactor, from :func:`react`.
    """
    client = EtcdClient(endpoints(sys.argv), reactor=reactor)
    try:
        print(await client.cluster_status())

        print("version:", await client.version())
        print("healthy:", await client.health())
        print("machines:", await client.machines())

        members = await client.members()
        for member in members:
            print("member:", member)
        try:
            print("leader:", await client.leader())
        except NoLeader as e:
            print("no leader:", e)

        print("self stats state:", (await client.self_stats())["state"])
        print("store stats gets:", (await client.store_stats())["getsSuccess"])
        print("leader stats followers:", sorted((await client.leader_stats())["followers"]))

        put = await client.raw("PUT", "/v2/keys/examples/admin", body={"value": "hello"})
        print("raw PUT:", put.status, put.body["action"])
        got = await client.raw("GET", "/v2/keys/examples/admin", {"quorum": True})
        print("raw GET:", got.status, got.body["node"]["value"])
        missing = await client.raw("GET", "/v2/keys/examples/nothing-here")
        print("raw GET missing:", missing.status, missing.body["message"])

        if len(members) >= 3:
            added = await add_member(reactor, client)
            print("added:", added)
            await client.update_member(added.id, [unused_peer_url()])
            print("updated:", next(m for m in await client.members() if m.id == added.id))
            await client.remove_member(added.id)
            print("removed:", added.id, "members now:", len(await client.members()))
        else:
            print("add/remove member: skipped (needs three members to keep quorum)")
    except EtcdV2Disabled as e:
        print("error:", e)
        raise SystemExit(2) from None
    finally:
        await client.close()


if __name__ == "__main__":
    react(main)
