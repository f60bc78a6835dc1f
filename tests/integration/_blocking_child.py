"""
Runs BlockingEtcdClient scenarios in a process of its own (crochet runs the global reactor in a
thread, which trial's own reactor must not share) and prints what happened as one JSON object.

Usage: python -m tests.integration._blocking_child URL
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from txetcd2 import EtcdConnectionError, EtcdError, TestFailed
from txetcd2.blocking import BlockingEtcdClient, ReactorThreadError


def error_name(call: Callable[[], object]) -> str | None:
    """
    Call ``call``; return the name of the exception it raised, or None.
    """
    try:
        call()
    except Exception as e:
        return type(e).__name__
    return None


def keyspace(client: BlockingEtcdClient) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    first = client.set("/b/key", "one")
    seen["set"] = [first.action, first.value]
    seen["get_value"] = client.get_value("/b/key")
    seen["default"] = client.get_value("/b/missing", "fallback")
    seen["update_prev"] = client.update("/b/key", "two").prev_node.value  # type: ignore[union-attr]
    seen["create_existing"] = error_name(lambda: client.create("/b/key", "x"))
    seen["get_missing"] = error_name(lambda: client.get("/b/missing"))
    seen["cas_wrong"] = error_name(lambda: client.compare_and_swap("/b/key", "3", prev_value="1"))
    seen["cas_right"] = client.compare_and_swap("/b/key", "3", prev_value="two").value
    seen["bad_key"] = error_name(lambda: client.get("/a/../b"))
    seen["cas_no_condition"] = error_name(lambda: client.compare_and_swap("/b/key", "4"))
    seen["refresh_ttl"] = client.refresh(client.set("/b/ttl", "v", ttl=60).node.key, 30).node.ttl
    client.mkdir("/b/dir")
    seen["append"] = client.append("/b/dir", "queued").node.key.startswith("/b/dir/")
    seen["rmdir_not_empty"] = error_name(lambda: client.rmdir("/b/dir"))
    seen["rmdir"] = client.rmdir("/b/dir", recursive=True).action
    seen["delete_missing_ok"] = client.delete("/b/missing", missing_ok=True)
    seen["cad"] = client.compare_and_delete("/b/key", prev_value="3").action
    seen["watch_timeout"] = error_name(lambda: client.watch("/b/quiet", timeout=0.5))
    index = client.set("/b/watched", "w").index
    seen["watch"] = client.watch("/b/watched", index=index).value
    return seen


def threads(client: BlockingEtcdClient) -> dict[str, Any]:
    errors: list[str] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                client.set(f"/threads/{n}/{i}", f"{n}-{i}")
        except Exception as e:  # reported to the test
            errors.append(repr(e))

    def incrementer() -> None:
        try:
            for _ in range(10):
                while True:
                    current = client.get("/threads-counter")
                    try:
                        client.compare_and_swap(
                            "/threads-counter",
                            str(int(current.value or "0") + 1),
                            prev_index=current.index,
                        )
                        break
                    except TestFailed:
                        continue
        except Exception as e:  # reported to the test
            errors.append(repr(e))

    client.set("/threads-counter", "0")
    workers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    workers += [threading.Thread(target=incrementer) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    leaves = client.get("/threads", recursive=True).node.leaves()
    expected = {f"/threads/{n}/{i}": f"{n}-{i}" for n in range(8) for i in range(25)}
    return {
        "errors": errors,
        "all_written": leaves == expected,
        "counter": client.get_value("/threads-counter"),
    }


def reactor_thread(client: BlockingEtcdClient) -> dict[str, Any]:
    import crochet

    @crochet.wait_for(timeout=30)
    def in_reactor() -> str | None:
        try:
            client.get_value("/anything", None)
        except ReactorThreadError as e:
            return str(e)
        return None

    message = in_reactor()
    return {"message": message, "still_works": client.get_value("/after", "ok")}


def main(url: str) -> None:
    report: dict[str, Any] = {}
    with BlockingEtcdClient(url, timeout=5.0) as client:
        report["keyspace"] = keyspace(client)
        report["threads"] = threads(client)
        report["reactor_thread"] = reactor_thread(client)
    dead = BlockingEtcdClient("http://127.0.0.1:1", timeout=2.0)
    error = _catch(lambda: dead.get("/x"))
    # Refused at every try; the last try may instead run into the call's 2 s deadline
    # (EtcdTimeout): both say the member could not be reached.
    report["dead"] = [isinstance(error, EtcdConnectionError), isinstance(error, EtcdError)]
    dead.close()
    report["closed"] = error_name(lambda: client.get("/x"))
    print(json.dumps(report), flush=True)


def _catch(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except BaseException as e:
        return e
    return None


if __name__ == "__main__":
    main(sys.argv[1])
