"""
Calls per get, by layer: ``python -m bench._layers URL [N] [CLIENT]``.

Runs one workload C worker (``N`` gets of one key, 64 in flight) twice in
fresh processes, with ``N`` and ``2 N`` gets, each under a profile hook that
counts every call (Python functions and built-ins, as cProfile counts them)
and gives it to a layer; the difference of the two runs, over ``N``, is what
one more get costs, without the imports and the set-up.

A call belongs to the layer of the function called when that function is in
one of the layers' modules (so Deferreds' own machinery is "Deferreds",
whoever fires them), otherwise (built-ins, the standard library, Twisted's
``Headers`` and ``URI``, treq's agents in ``twisted.web.client``) to the
layer of the innermost caller that is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from types import FrameType
from typing import Any

#: Layers, by the start of a module's path (the first that matches wins).
LAYERS = (
    ("txetcd2/_api/", "api (key space: arguments, decoding)"),
    ("txetcd2/_client.py", "api (key space: arguments, decoding)"),
    ("txetcd2/_wire/", "wire (headers, JSON, models, keys)"),
    ("txetcd2/_session/", "session (call, failover, freshness)"),
    ("txetcd2/_transport/exchange.py", "exchange (treq request, body, deadline)"),
    ("txetcd2/_transport/deadline.py", "exchange (treq request, body, deadline)"),
    ("txetcd2/_transport/agent.py", "exchange (treq request, body, deadline)"),
    ("txetcd2/_transport/", "agent pool (HTTP/1.1, httptools)"),
    ("treq/", "treq (HTTPClient, cookie and decoder agents)"),
    ("twisted/internet/defer.py", "Deferreds"),
    ("twisted/internet/", "reactor (sockets, timers)"),
    ("bench/", "bench loop"),
)


def _layer(filename: str) -> str | None:
    for start, name in LAYERS:
        at = filename.find(start)
        if at >= 0 and (at == 0 or filename[at - 1] == "/"):
            return name
    return None


def count(argv: list[str]) -> dict[str, int]:
    """
    Run one worker in this process, counting calls by layer.

    :param argv: the worker's arguments (client, workload, url, n, inflight, prefix).
    :returns: calls by layer.
    """
    import warnings

    from bench._workloads import measure

    warnings.simplefilter("ignore", DeprecationWarning)
    counts: Counter[str] = Counter()
    known: dict[str, str | None] = {}

    def owner(frame: FrameType | None) -> str:
        while frame is not None:
            filename = frame.f_code.co_filename
            layer = known.get(filename, "")
            if layer == "":
                layer = known[filename] = _layer(filename)
            if layer is not None:
                return layer
            frame = frame.f_back
        return "other"

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" or event == "c_call":
            counts[owner(frame)] += 1

    client, workload, url, n, inflight, prefix = argv
    sys.setprofile(hook)
    try:
        measure(client, workload, url, int(n), int(inflight), prefix)
    finally:
        sys.setprofile(None)
    return dict(counts)


def main(argv: list[str]) -> None:
    """
    Print calls per get by layer, as JSON and as a table.

    :param argv: URL, then optionally N (default 2000) and the client (``txetcd2``).
    """
    if argv and argv[0] == "--worker":
        print(json.dumps(count(argv[1:])))
        return
    url = argv[0]
    n = int(argv[1]) if len(argv) > 1 else 2000
    client = argv[2] if len(argv) > 2 else "txetcd2"
    runs = []
    for gets in (n, 2 * n):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench._layers",
                "--worker",
                client,
                "C",
                url,
                str(gets),
                "64",
                "bench/layers",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    layers = sorted(set(runs[0]) | set(runs[1]))
    per_get = {name: (runs[1].get(name, 0) - runs[0].get(name, 0)) / n for name in layers}
    total = sum(per_get.values())
    for name, calls in sorted(per_get.items(), key=lambda item: -item[1]):
        print(f"{calls:8.1f}  {name}")
    print(f"{total:8.1f}  total calls per get ({client}, workload C, 64 in flight)")


if __name__ == "__main__":
    main(sys.argv[1:])
