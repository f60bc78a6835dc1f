"""
The README demo: events stream from a private etcd while a writer changes keys.

It starts an embedded etcd (the ``txetcd2.testing`` harness; the ``etcd`` binary must be
installed), runs the ``etcd-watch`` twistd plugin on ``/demo`` as a child process (one JSON line
per event on stdout, its log on stderr), and makes the changes of ``examples/writer.py``. Then it
keeps watching until you press Ctrl-C; change keys yourself with the printed ``curl`` command
meanwhile.

Run: make demo   (sets everything up), or: python examples/demo.py
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import react
from twisted.python.failure import Failure
from writer import make_changes

from txetcd2 import EtcdClient
from txetcd2.testing import EtcdBinaryNotFound, EtcdCluster

PREFIX = "/demo"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: ``python -c`` code that starts a new session, then runs Python with the arguments that follow.
SESSION_LAUNCHER = (
    "import os, sys; os.setsid(); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


class WatchProcess(ProcessProtocol):
    """
    The ``etcd-watch`` child; ``ended`` fires with its exit status.
    """

    def __init__(self) -> None:
        self.ended: Deferred[int | None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(getattr(reason.value, "exitCode", None))

    def terminate(self) -> None:
        try:
            assert self.transport is not None
            self.transport.signalProcess("TERM")
        except ProcessExitedAlready:
            pass


def spawn_watch(reactor: Any, url: str) -> WatchProcess:
    """
    Run ``python -m twisted etcd-watch`` (the twistd plugin) on the embedded etcd.

    ``--index 1`` on a fresh etcd reports every change under the prefix, even those made before
    the watch is up. ``PYTHONPATH`` includes the checkout so that the plugin in
    ``twisted/plugins/`` is found even with an editable install.

    The child runs in a session of its own (:data:`SESSION_LAUNCHER`), so that a Ctrl-C in the
    terminal reaches only the demo, which then stops the child with one SIGTERM; in the terminal's
    process group, the child would get both signals and twistd would log a traceback for the
    second one.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [CHECKOUT, env.get("PYTHONPATH")] if p)
    argv = [
        sys.executable, "-c", SESSION_LAUNCHER,
        "-m", "twisted", "--log-file=+", "--log-format=text", "etcd-watch",
        "--endpoints", url, "--prefix", PREFIX, "--recursive", "--index", "1",
    ]  # fmt: skip
    process = WatchProcess()
    reactor.spawnProcess(process, sys.executable, argv, env, childFDs={0: "w", 1: 1, 2: 2})
    return process


async def main(reactor: Any) -> None:
    cluster = EtcdCluster(1, reactor=reactor)
    try:
        await cluster.start()
    except EtcdBinaryNotFound as e:
        say(str(e))
        raise SystemExit(1) from None
    url = cluster.client_urls[0]
    say(f"embedded etcd at {url}; watching {PREFIX} with `twistd etcd-watch`")
    watch = spawn_watch(reactor, url)

    stopping = []

    async def shutdown() -> None:
        stopping.append(True)
        try:
            watch.terminate()
            await watch.ended
        finally:
            await cluster.stop()
        say("stopped; embedded etcd removed")

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(shutdown()))

    def watch_ended(status: int | None) -> None:
        if not stopping:
            say(f"etcd-watch exited unexpectedly (status {status}); stopping")
            reactor.stop()

    watch.ended.addCallback(watch_ended)

    client = EtcdClient(url, reactor=reactor)
    try:
        await make_changes(reactor, client, PREFIX)
    finally:
        await client.close()
    say(
        "writer done. Still watching; try in another terminal:\n"
        f"  curl -X PUT {url}/v2/keys{PREFIX}/hello -d value=world\n"
        "Press Ctrl-C to stop."
    )
    await Deferred()  # until Ctrl-C (SIGINT) or SIGTERM stops the reactor


if __name__ == "__main__":
    react(main)
