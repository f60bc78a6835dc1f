"""
The MemoryEtcd row: one key-space round trip (a ``set`` or a ``get`` through a real
:class:`~txetcd2.EtcdClient` over the in-memory agent) per call, in microseconds.

No reactor, no network, no etcd: ``python bench/memory_bench.py [--calls N] [--rounds R]``
(``make bench-memory``). Prints one line per phase, the median of the rounds with their range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from txetcd2.testing import MemoryEtcd


def timed(calls: int, call: Callable[[int], Any]) -> float:
    """
    Microseconds per call of ``call(i)`` for ``i`` in ``range(calls)``; each must answer at once.
    """
    started = time.perf_counter()
    for i in range(calls):
        answered: list[object] = []
        call(i).addBoth(answered.append)
        if not answered or isinstance(answered[0], BaseException):
            raise RuntimeError(f"call {i} did not answer at once: {answered}")
    return (time.perf_counter() - started) / calls * 1e6


def one_round(calls: int) -> dict[str, float]:
    """
    One fresh MemoryEtcd and client: ``calls`` sets of distinct keys, then as many gets.
    """
    etcd = MemoryEtcd()
    client = etcd.client()
    figures = {
        "set": timed(calls, lambda i: client.set(f"/bench/k{i}", "value")),
        "get": timed(calls, lambda i: client.get(f"/bench/k{i}")),
        "get_value (missing, default)": timed(calls, lambda i: client.get_value("/none", None)),
    }
    client.close()
    etcd.close()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rounds = [one_round(args.calls) for _ in range(args.rounds)]
    print(f"MemoryEtcd key-space round trip, {args.calls} calls x {args.rounds} rounds")
    for phase in rounds[0]:
        values = [r[phase] for r in rounds]
        print(
            f"  {phase:<30} {statistics.median(values):8.1f} us/call"
            f"  (range {min(values):.1f}-{max(values):.1f})"
        )


if __name__ == "__main__":
    main()
