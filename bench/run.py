"""
The side-by-side benchmark, in one command: ``python -m bench.run [--quick]``.

Starts its own etcd on 127.0.0.1, runs every client through each workload
in a fresh worker process (``bench._workloads``), repeats the whole run
``--rounds`` times, prints every figure with its ratio to the workload's
reference measured in the same round, then the issue's targets, and stops
the etcd it started.

- B: sequential set then get of ``--keys`` keys (reference: the plain
  Twisted ``Agent`` loop).
- C: ``--gets`` gets of one key, 64 in flight (reference: aio_etcd, and
  aio_etcd again with glibc's malloc thresholds fixed, ``-tuned``); wrk
  measures the server's limit on the same etcd and key.
- D: one recursive txetcd2 watcher while a writer with 32 in flight sets
  ``--watch-keys`` keys: missed events and delay of the last one.
- E: 1,000 and 10,000 idle watchers in one worker, plain Watchers and
  WatchHub local watchers (``bench._idle``): memory and file descriptors per
  watcher, and how many etcd registered.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from bench._etcd import MEMORY_DIR, data_parent, running_etcd, running_tls_etcd, tls_context
from bench._idle import report_lines, run_e

#: Each worker process is bounded in time.
WORKER_DEADLINE = 120.0
B_CLIENTS = ("txetcd2", "txetcd2-twisted", "pool", "agent", "treq", "python-etcd", "aio_etcd")
#: Workload C over TLS (an https:// etcd, server certificate only).
C_TLS_CLIENTS = ("txetcd2", "aio_etcd", "aio_etcd-tuned")
C_CLIENTS = (
    "txetcd2",
    "txetcd2-unpipelined",
    "txetcd2-twisted",
    "pool",
    "agent",
    "treq",
    "aio_etcd",
    "aio_etcd-tuned",
)

#: What the ``-tuned`` rows add to the worker's environment: glibc's malloc
#: with fixed mmap and trim thresholds. asyncio reads up to 256 KiB at a time,
#: and until the process happens to free a large block (which raises glibc's
#: thresholds), each read's buffer is mapped and unmapped, or the heap's top
#: trimmed, by the kernel: aio_etcd's gets in workload C take about a fifth
#: less CPU in a process where that happened (importing Twisted's reactor is
#: enough), or with these settings. See "The reference's memory allocator" in
#: bench/README.rst.
TUNED_MALLOC = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=4194304"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Figures = dict[str, float]


def worker(
    client: str,
    workload: str,
    url: str,
    n: int,
    inflight: int,
    prefix: str,
    ca: str | None = None,
) -> Any:
    """
    Run one client through one workload in a fresh process (``ca``: the CA
    certificate of an ``https://`` etcd).

    :returns: its figures by phase.
    :raises RuntimeError: when the worker fails or runs out of time.
    """
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if ca is not None:
        env["BENCH_CA"] = ca  # the CA of an https:// etcd
    if client.endswith("-tuned"):
        client = client.removesuffix("-tuned")
        env["GLIBC_TUNABLES"] = TUNED_MALLOC
    args = [sys.executable, "-m", "bench._workloads", client, workload, url, str(n)]
    done = subprocess.run(
        [*args, str(inflight), prefix],
        capture_output=True,
        text=True,
        env=env,
        timeout=WORKER_DEADLINE,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{client} {workload} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def wrk_limit(url: str, key: str, seconds: int, connections: int = 64) -> float | None:
    """
    The server's limit for gets of ``key``, measured with wrk.

    :returns: requests per second, or ``None`` without wrk.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    done = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", f"{url}/v2/keys/{key}"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    found = re.search(r"Requests/sec:\s*([\d.]+)", done.stdout)
    return float(found.group(1)) if found else None


def import_ms(module: str, tries: int = 5) -> float:
    """
    The best of ``tries`` cold imports of ``module``, from ``-X importtime``.

    :returns: milliseconds.
    """
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    best = float("inf")
    for _ in range(tries):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        for line in done.stderr.splitlines():
            fields = [f.strip() for f in line.split("|")]
            if len(fields) == 3 and fields[2] == module:
                best = min(best, int(fields[1]) / 1000)
    return best


def put(url: str, key: str, value: str, ca: str | None = None) -> None:
    """
    Set a key with the standard library (the fixture, not measured).
    """
    request = urllib.request.Request(
        f"{url}/v2/keys/{key}", data=f"value={value}".encode(), method="PUT"
    )
    with urllib.request.urlopen(request, timeout=10, context=tls_context(ca)) as answer:
        answer.read()


def one_round(
    url: str,
    r: int,
    keys: int,
    gets: int,
    wrk_seconds: int,
    watch_keys: int,
    idle: tuple[int, ...] = (),
    tls: tuple[str, str] | None = None,
) -> dict[str, Figures]:
    """
    Measure every client once (``tls``: the URL and CA of an ``https://``
    etcd for the C over TLS rows).

    :returns: figures by row name (``"B set txetcd2"``, ...).
    """
    rows: dict[str, Figures] = {}
    for client in B_CLIENTS:
        found = worker(client, "B", url, keys, 1, f"bench/r{r}/{client}")
        for phase, figures in found.items():
            rows[f"B {phase} {client}"] = figures
    for client in C_CLIENTS:
        rows[f"C get {client}"] = worker(client, "C", url, gets, 64, "bench/x")["get"]
    if tls is not None:
        for client in C_TLS_CLIENTS:
            found = worker(client, "C", tls[0], gets, 64, "bench/x", ca=tls[1])
            rows[f"C tls {client}"] = found["get"]
    if watch_keys:
        rows["D watch txetcd2"] = worker("txetcd2", "D", url, watch_keys, 32, f"bench/d{r}")[
            "watch"
        ]
    if idle:
        rows.update(run_e(url, idle, r))
    limit = wrk_limit(url, "bench/c", wrk_seconds)
    if limit is not None:
        rows["C get wrk (server limit)"] = {"ops": limit}
    return rows


#: (row, reference row) for the ratio printed next to each figure.
def reference(row: str) -> str:
    """
    :returns: the row that ``row``'s ratio is taken to.
    """
    workload, phase, _ = row.split(" ", 2)
    return f"{workload} {phase} agent" if workload == "B" else f"C {phase} aio_etcd"


#: The issue's targets: (label, row, reference row, figure, at least).
TARGETS = (
    ("C ops/s >= 1.5x aio_etcd", "C get txetcd2", "C get aio_etcd", "ops", 1.5),
    ("C TLS ops/s >= 1.3x aio_etcd TLS", "C tls txetcd2", "C tls aio_etcd", "ops", 1.3),
    ("B gets ops/s >= 1.3x python-etcd", "B get txetcd2", "B get python-etcd", "ops", 1.3),
    ("B sets ops/s >= 1.2x python-etcd", "B set txetcd2", "B set python-etcd", "ops", 1.2),
)


def spread(values: list[float]) -> str:
    """
    :returns: the median and, over several rounds, the range.
    """
    if len(values) == 1:
        return f"{values[0]:.3g}" if values[0] < 100 else f"{values[0]:.0f}"
    fmt = ".0f" if min(values) >= 100 else ".2f"
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(rounds: list[dict[str, Figures]]) -> str:
    """
    Put the rounds in a table: median (min-max) of each figure, and of its
    ratio to the reference taken round by round.

    :returns: the table, as reST.
    """
    header = f"{'row':28} {'ops/s':>22} {'x ref':>20} {'CPU us/op':>10} {'p50 ms':>7} "
    header += f"{'p99 ms':>7}"
    lines = [header]
    for row in rounds[0]:
        if row.startswith(("D ", "E ")):
            continue
        ref = reference(row)
        ops = [r[row]["ops"] for r in rounds]
        ratios = [r[row]["ops"] / r[ref]["ops"] for r in rounds if ref in r]
        first = rounds[0][row]
        cpu = statistics.median(r[row].get("cpu_us", 0.0) for r in rounds)
        p50 = statistics.median(r[row].get("p50_ms", 0.0) for r in rounds)
        p99 = statistics.median(r[row].get("p99_ms", 0.0) for r in rounds)
        extra = (
            f"{cpu:10.0f} {p50:7.2f} {p99:7.2f}" if "cpu_us" in first else f"{'':10} {'':7} {'':7}"
        )
        lines.append(f"{row:28} {spread(ops):>22} {spread(ratios):>20} {extra}")
    lines.append("")
    lines.append(
        "references: B rows -> the raw Agent loop of the same phase; C rows -> aio_etcd "
        "(C tls: aio_etcd over TLS); -tuned: glibc malloc thresholds fixed (see bench/README.rst)"
    )
    lines.append("")
    lines.append("targets (ratio per round):")
    for label, row, ref, figure, least in TARGETS:
        per_round = [r[row][figure] / r[ref][figure] for r in rounds]
        verdict = "met" if statistics.median(per_round) >= least else "NOT met"
        shown = ", ".join(f"{x:.2f}" for x in per_round)
        lines.append(f"  {label:36} {shown:24} {verdict}")
    cpu_ratio = [r["C get txetcd2"]["cpu_us"] / r["C get aio_etcd"]["cpu_us"] for r in rounds]
    lines.append(
        "  C CPU/op txetcd2 / aio_etcd          " + ", ".join(f"{x:.2f}" for x in cpu_ratio)
    )
    for phase in ("get", "tls"):
        row, tuned = f"C {phase} txetcd2", f"C {phase} aio_etcd-tuned"
        if tuned in rounds[0]:
            shown = ", ".join(f"{r[row]['ops'] / r[tuned]['ops']:.2f}" for r in rounds)
            lines.append(f"  C {phase} ops/s txetcd2 / aio_etcd-tuned {shown}")
    if "D watch txetcd2" in rounds[0]:
        d = [r["D watch txetcd2"] for r in rounds]
        missed = ", ".join(f"{x['missed']:.0f}/{x['missed'] + x['received']:.0f}" for x in d)
        delay = ", ".join(f"{x['delay_ms']:.1f}" for x in d)
        ok = all(x["missed"] == 0 for x in d)
        ok = ok and statistics.median(x["delay_ms"] for x in d) <= 50
        received = ", ".join(f"{x['received']:.0f}" for x in d)
        lines.append(f"  D events received                    {received}")
        lines.append(f"  D missed events (0 wanted)           {missed}")
        lines.append(
            f"  D 0 missed, last event <= 50 ms      {delay:24} {'met' if ok else 'NOT met'}"
        )
        writer = ", ".join(f"{x['ops']:.0f}" for x in d)
        lines.append(f"  D writer sets/s (32 in flight)       {writer}")
        told = ", ".join(
            "/".join(f"{x.get(name, 0):.0f}" for name in ("lagged", "resyncs", "probes"))
            for x in d
        )
        lines.append(f"  D lagging/resyncs/probes reported    {told}")
    lines.extend(report_lines(rounds))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """
    Parse the options, run the rounds, print the table.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n")[1]
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds: small counts, 1 round"
    )
    parser.add_argument("--rounds", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--keys", type=int, default=None, help="workload B keys (default 2000)")
    parser.add_argument("--gets", type=int, default=None, help="workload C gets (default 20000)")
    parser.add_argument("--watch-keys", type=int, default=None, help="workload D (default 5000)")
    parser.add_argument(
        "--idle",
        default=None,
        help="workload E watcher counts, comma-separated (default 1000,10000; 0: skip)",
    )
    parser.add_argument("--etcd", default="etcd", help="the etcd executable")
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"where etcd's data directory goes (default {MEMORY_DIR}, a tmpfs, when it exists)",
    )
    options = parser.parse_args(argv)
    parent = data_parent(options.data_dir)
    rounds = options.rounds or (1 if options.quick else 3)
    keys = options.keys or (100 if options.quick else 2000)
    gets = options.gets or (1000 if options.quick else 20000)
    wrk_seconds = 1 if options.quick else 3
    watch_keys = options.watch_keys or (500 if options.quick else 5000)
    idle_text = options.idle or ("1000" if options.quick else "1000,10000")
    idle = tuple(n for n in (int(x) for x in idle_text.split(",")) if n > 0)
    started = time.monotonic()
    results: list[dict[str, Figures]] = []
    with (
        running_etcd(options.etcd, parent=parent) as url,
        running_tls_etcd(options.etcd, parent=parent) as tls,
    ):
        put(url, "bench/c", "x" * 32)
        put(tls[0], "bench/c", "x" * 32, ca=tls[1])
        for r in range(rounds):
            results.append(one_round(url, r, keys, gets, wrk_seconds, watch_keys, idle, tls))
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    print(
        f"{rounds} round(s), B {keys} keys, C {gets} gets x 64 in flight, "
        f"{time.monotonic() - started:.0f}s, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, etcd data in {parent or tempfile.gettempdir()}"
    )
    print(report(results))
    ours, floor = import_ms("txetcd2"), import_ms("treq")
    verdict = "met" if ours < 300 else "NOT met"
    print(
        f"  import txetcd2 < 300 ms: {ours:.0f} ms (best of 5), {ours / floor:.2f}x "
        f"import treq ({floor:.0f} ms)  {verdict}"
    )


if __name__ == "__main__":
    main()
