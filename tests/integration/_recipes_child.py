"""
Recipe users in processes of their own, for the integration tests: each
prints what happens as JSON lines on stdout, flushed at once.

Usage::

    python -m tests.integration._recipes_child lock URLS NAME TIMES TTL
    python -m tests.integration._recipes_child elect URLS NAME IDENTITY TTL

``URLS`` is a comma-separated list of client URLs.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogBeginner
from zope.interface import provider

from txetcd2 import EtcdClient, EtcdError, KeyNotFound
from txetcd2.recipes import LeaderElection, Lock

COUNTER = "/recipes/counter"


def say(event: str, **fields: Any) -> None:
    """
    Print one JSON line: the event, the wall-clock time, and the fields.
    """
    print(json.dumps({"event": event, "time": time.time(), **fields}), flush=True)


async def read_counter(client: EtcdClient) -> int:
    """
    The counter, by a quorum read (0 when missing).
    """
    try:
        response = await client.get(COUNTER, quorum=True)
    except KeyNotFound:
        return 0
    return int(response.node.value or "0")


async def increment(client: EtcdClient, seen: int) -> None:
    """
    Write ``seen + 1`` without a compare; when the outcome is unclear, read
    again (quorum) until the counter shows either value, and write again if
    it still shows ``seen``.
    """
    while True:
        try:
            await client.set(COUNTER, str(seen + 1))
            return
        except EtcdError as e:
            say("write-retry", error=type(e).__name__)
        while True:
            try:
                now = await read_counter(client)
                break
            except EtcdError as e:
                say("read-retry", error=type(e).__name__)
                await task.deferLater(reactor, 0.2)
        if now == seen + 1:
            return
        if now != seen:
            say("violation", seen=seen, now=now)
            return


async def hold(lock: Lock, client: EtcdClient) -> None:
    """
    Take the lock once, increment the counter inside, release it.
    """
    while True:
        try:
            token = await lock.acquire(timeout=120)
            break
        except EtcdError as e:
            say("acquire-retry", error=type(e).__name__, detail=str(e)[:200])
            await task.deferLater(reactor, 0.2)
    lost: list[str] = []
    lock.lost.addCallback(lost.append)
    while True:
        try:
            seen = await read_counter(client)
            break
        except EtcdError as e:
            say("read-retry", error=type(e).__name__)
            await task.deferLater(reactor, 0.2)
    await task.deferLater(reactor, 0.003)
    await increment(client, seen)
    say("held", token=token, seen=seen, lost=lost)
    try:
        await lock.release()
    except EtcdError as e:
        say("release-failed", error=type(e).__name__, detail=str(e)[:200])


async def locker(urls: str, name: str, times: int, ttl: int) -> None:
    client = EtcdClient(urls, reactor=reactor, timeout=3.0, max_retries=8)
    lock = Lock(client, name, ttl=ttl)
    say("ready")
    for _ in range(times):
        await hold(lock, client)
    say("done", times=times)
    await client.close()


async def candidate(urls: str, name: str, identity: str, ttl: int) -> None:
    client = EtcdClient(urls, reactor=reactor, timeout=2.0, max_retries=8)
    election = LeaderElection(client, name, identity, ttl=ttl)
    election.on("elected", lambda token: say("elected", identity=identity, token=token))
    election.on("deposed", lambda why: say("deposed", identity=identity, why=why))
    election.startService()
    say("ready", identity=identity)

    async def stop() -> None:
        await election.stopService()
        say("stopped", identity=identity)
        await client.close()

    # SIGTERM stops the reactor, which first waits for the resignation.
    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(stop()))
    await Deferred()  # runs until killed or stopped


@provider(ILogObserver)
def report_warnings(event: dict[str, Any]) -> None:
    """
    A log observer printing txetcd2's warnings and errors as ``log`` lines.
    """
    level = event.get("log_level")
    if level is None or level < LogLevel.warn:
        return
    namespace = event.get("log_namespace", "")
    say("log", namespace=namespace, level=level.name, text=formatEvent(event)[:300])


def main(argv: list[str]) -> None:
    globalLogBeginner.beginLoggingTo([report_warnings], redirectStandardIO=False)
    command, urls, *rest = argv
    if command == "lock":
        name, times, ttl = rest
        work = locker(urls, name, int(times), int(ttl))
    elif command == "elect":
        name, identity, ttl = rest
        work = candidate(urls, name, identity, int(ttl))
    else:
        raise SystemExit(f"unknown command {command!r}")

    def finished(result: object) -> object:
        if reactor.running:
            reactor.stop()
        return result

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(work).addBoth(finished))
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
