"""
Workload E: many idle watchers in one process.

``python -m bench._idle URL N MODE PREFIX`` starts ``N`` idle watchers, one
per distinct key ``PREFIX/k<i>`` (non-recursive, nobody writes to them), in
this one process, waits until etcd registered them (``GET /v2/stats/store``,
field ``watchers``), and prints one JSON line:

- ``kib``: resident memory per watcher (``VmRSS`` of ``/proc/self/status``,
  after minus before, over ``N``), in KiB;
- ``fds``: file descriptors per watcher (``/proc/self/fd``, after minus before, over ``N``);
- ``registered``: how many watchers etcd added;
- ``start_s``: seconds until etcd registered them all (or the deadline).

``MODE`` is ``plain`` (one :class:`~txetcd2.watch.Watcher` each: one stream,
one connection each) or ``hub`` (local watchers of one
:class:`~txetcd2.watch.WatchHub` on ``PREFIX``: one stream for all).
The baseline is taken after the client, the imports and one warm-up watcher
exist, so it counts only what each watcher adds. The worker raises its
``RLIMIT_NOFILE`` soft limit to the hard one; :func:`run_e` runs the workers.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from typing import Any

#: Seconds a worker may take to get its watchers registered.
REGISTER_DEADLINE = 180.0
#: Seconds the whole worker may take (start, measure, stop).
WORKER_DEADLINE = 300.0
#: The target of issue 16: memory per plain watcher at 10,000, KiB.
TARGET_KIB = 10.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def raise_nofile() -> int:
    """
    Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit.

    :returns: the new soft limit.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib() -> int:
    """
    :returns: this process's resident memory (``VmRSS``), KiB.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def fd_count() -> int:
    """
    :returns: how many file descriptors this process has open.
    """
    return len(os.listdir("/proc/self/fd"))


def etcd_watchers(url: str) -> int:
    """
    :returns: the ``watchers`` field of etcd's ``/v2/stats/store``.
    """
    with urllib.request.urlopen(f"{url}/v2/stats/store", timeout=10) as answer:
        return int(json.load(answer)["watchers"])


async def idle_watchers(reactor: Any, url: str, n: int, mode: str, prefix: str) -> Any:
    """
    Start ``n`` idle watchers, measure what they cost, stop them.

    :returns: the figures.
    """
    from twisted.internet.defer import gatherResults
    from twisted.internet.task import deferLater

    from txetcd2 import EtcdClient

    client = EtcdClient(url, reactor=reactor)
    await client.set(f"{prefix}/warm", "0")

    async def registered(count: int, deadline: float) -> int:
        while True:
            now = etcd_watchers(url)
            if now >= count or time.monotonic() > deadline:
                return now
            await deferLater(reactor, 0.05)

    # Warm up: the imports, the pool and the code paths of one watcher.
    base = etcd_watchers(url)
    warm = client.watcher(f"{prefix}/warm")
    warm.start()
    await registered(base + 1, time.monotonic() + 30)
    await warm.stop()
    deadline = time.monotonic() + 30
    while etcd_watchers(url) > base and time.monotonic() < deadline:
        await deferLater(reactor, 0.05)
    gc.collect()
    before = etcd_watchers(url)
    rss0, fds0 = rss_kib(), fd_count()
    t0 = time.monotonic()
    hub = None
    if mode == "hub":
        from txetcd2.watch import WatchHub

        hub = WatchHub(client, prefix)
    watchers: list[Any] = []
    for i in range(n):
        key = f"{prefix}/k{i}"
        w = hub.watcher(key) if hub is not None else client.watcher(key)
        w.start()
        watchers.append(w)
        if i % 500 == 499:
            await deferLater(reactor, 0)  # let the requests go out
    wanted = before + (1 if hub is not None else n)
    after = await registered(wanted, t0 + REGISTER_DEADLINE)
    started = time.monotonic() - t0
    await deferLater(reactor, 0.2)
    gc.collect()
    rss1, fds1 = rss_kib(), fd_count()
    await gatherResults([w.stop() for w in watchers])
    await client.close()
    return {
        "kib": (rss1 - rss0) / n,
        "fds": (fds1 - fds0) / n,
        "registered": float(after - before),
        "start_s": started,
    }


def measure(url: str, n: int, mode: str, prefix: str) -> Any:
    """
    Run the workload under the global reactor.

    :returns: the figures.
    """
    raise_nofile()
    from twisted.internet import reactor as _reactor
    from twisted.internet.defer import Deferred

    reactor: Any = _reactor
    out: dict[str, Any] = {}
    failures: list[Any] = []

    async def main() -> None:
        out.update(await idle_watchers(reactor, url, n, mode, prefix))

    def done(result: object) -> None:
        if hasattr(result, "getTraceback"):
            failures.append(result)
        reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(main()).addBoth(done))
    reactor.run()
    if failures:
        raise SystemExit(failures[0].getTraceback())
    return out


def run_e(url: str, counts: tuple[int, ...], r: int) -> dict[str, dict[str, float]]:
    """
    Measure plain and coalesced idle watchers, each count in a fresh worker.

    :param url: etcd's client URL.
    :param counts: the numbers of watchers.
    :param r: the round, for distinct keys.
    :returns: figures by row name (``"E 10000 plain"``, ...).
    :raises RuntimeError: when a worker fails or runs out of time.
    """
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows: dict[str, dict[str, float]] = {}
    for n in counts:
        for mode in ("plain", "hub"):
            args = [sys.executable, "-m", "bench._idle", url, str(n), mode, f"bench/e{r}/{mode}"]
            done = subprocess.run(
                args,
                capture_output=True,
                text=True,
                env=env,
                timeout=WORKER_DEADLINE,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"E {n} {mode} failed:\n{done.stderr[-2000:]}")
            rows[f"E {n} {mode}"] = json.loads(done.stdout.splitlines()[-1])
    return rows


def _spread(values: list[float], fmt: str) -> str:
    """
    :returns: the median and, over several rounds, the range.
    """
    from statistics import median

    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return f"{median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report_lines(rounds: list[dict[str, dict[str, float]]]) -> list[str]:
    """
    The E rows (median (min-max) over the rounds) and the E target lines.

    :param rounds: each round's figures (rows starting with ``"E "``).
    :returns: the lines.
    """
    from statistics import median

    names = [row for row in rounds[0] if row.startswith("E ")]
    if not names:
        return []
    lines = [
        "",
        f"{'E idle watchers':20} {'KiB/watcher':>20} {f'x {TARGET_KIB:g} KiB':>20} "
        f"{'fds/watcher':>12} {'etcd registered':>20} {'start s':>8}",
    ]
    for row in names:
        figures = [r[row] for r in rounds if row in r]
        kib = [f["kib"] for f in figures]
        lines.append(
            f"{row:20} {_spread(kib, '.2f'):>20} "
            f"{_spread([k / TARGET_KIB for k in kib], '.3f'):>20} "
            f"{median(f['fds'] for f in figures):12.4f} "
            f"{_spread([f['registered'] for f in figures], '.0f'):>20} "
            f"{median(f['start_s'] for f in figures):8.1f}"
        )
    lines.append(
        "(per distinct key, non-recursive; plain: one Watcher each; "
        "hub: WatchHub local watchers, one stream)"
    )
    largest = max(int(row.split()[1]) for row in names)
    lines.append("")
    note = "" if largest == 10000 else "; the issue's target is for 10,000"
    lines.append(f"E targets ({largest:,} watchers, x {TARGET_KIB:g} KiB per round{note}):")
    for row in names:
        _, n, mode = row.split()
        if int(n) != largest:
            continue
        per_round = [r[row]["kib"] / TARGET_KIB for r in rounds if row in r]
        verdict = "met" if median(per_round) <= 1 else "NOT met"
        shown = ", ".join(f"{x:.3f}" for x in per_round)
        lines.append(
            f"  {'E ' + mode + f' <= {TARGET_KIB:g} KiB per watcher':36} {shown:24} {verdict}"
        )
    return lines


def main(argv: list[str]) -> None:
    """
    The worker's entry point.

    :param argv: url, n, mode (``plain`` or ``hub``), prefix.
    """
    url, n, mode, prefix = argv
    if mode not in ("plain", "hub"):
        raise SystemExit(f"unknown mode {mode!r}: plain or hub")
    print(json.dumps(measure(url, int(n), mode, prefix)))


if __name__ == "__main__":
    main(sys.argv[1:5])
