"""
Measurements of one worker run, and their summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def percentile(values: list[float], p: float) -> float:
    """
    The ``p``-th percentile (nearest rank) of ``values``.

    :param values: the samples.
    :param p: 0 to 100.
    :returns: the percentile, or 0.0 without samples.
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[rank]


class Result:
    """
    The figures of one worker run, by phase (``set``, ``get``).
    """

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    def add(self, phase: str, n: int, wall: float, cpu: float, lat: list[float]) -> None:
        """
        Record one phase.

        :param phase: its name.
        :param n: how many operations.
        :param wall: elapsed seconds.
        :param cpu: this process's CPU seconds.
        :param lat: per-operation latencies in seconds.
        """
        self.phases[phase] = {
            "ops": n / wall if wall else 0.0,
            "cpu_us": cpu / n * 1e6 if n else 0.0,
            "p50_ms": percentile(lat, 50) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3,
        }

    def to_json(self) -> dict[str, Any]:
        """
        :returns: the figures, for the parent process.
        """
        return self.phases


def run_sequential_sync(
    set_: Callable[[str, str], Any], get: Callable[[str], Any], n: int, prefix: str
) -> Result:
    """
    Workload B with a blocking client.

    :param set_: sets one key.
    :param get: gets one key.
    :param n: how many keys.
    :param prefix: the key prefix.
    :returns: the measurements.
    """
    result = Result()
    for phase, call in (
        ("set", lambda i: set_(f"{prefix}/{i}", f"v{i}")),
        ("get", lambda i: get(f"{prefix}/{i}")),
    ):
        lat: list[float] = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            call(i)
            lat.append(time.perf_counter() - s)
        result.add(phase, n, time.perf_counter() - t0, time.process_time() - cpu0, lat)
    return result
