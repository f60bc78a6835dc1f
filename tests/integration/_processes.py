"""
Child processes for integration tests: run Python scripts and twistd with the checkout on the
path, collect their output, signal them, and wait for them with deadlines.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

#: The root of the checkout (holds txetcd2/, twisted/plugins/ and examples/).
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Run twistd with this interpreter (``python -m twisted`` is the newer ``twist`` runner).
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def checkout_env(**extra: str) -> dict[str, str]:
    """
    The environment for a child: ours, with the checkout first on ``PYTHONPATH``.

    :param extra: more variables.
    :returns: the environment.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [CHECKOUT, env.get("PYTHONPATH")] if p)
    env.update(extra)
    return env


class Child(ProcessProtocol):
    """
    A child process whose output is collected.

    :ivar out: everything written on stdout so far.
    :ivar err: everything written on stderr so far.
    :ivar ended: fires with the exit code (None when killed by a signal).
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.out = b""
        self.err = b""
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.ended: Deferred[int | None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.exit_code = getattr(reason.value, "exitCode", None)
        self.exit_signal = getattr(reason.value, "signal", None)
        self.ended.callback(self.exit_code)

    @property
    def running(self) -> bool:
        """
        Whether the process has not ended yet.
        """
        return not self.ended.called

    def lines(self) -> list[str]:
        """
        The complete lines written on stdout so far.
        """
        return self.out.decode("utf-8", "replace").splitlines()[: self.out.count(b"\n")]

    def signal(self, name: str) -> None:
        """
        Send a signal (``"TERM"``, ``"INT"``, ``"KILL"``) unless the process has ended.
        """
        try:
            assert self.transport is not None
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def signal_group(self, name: str) -> None:
        """
        Send a signal to the child's whole process group, as a terminal's Ctrl-C does.

        The child must lead its own group: start it with :func:`in_new_session`.
        """
        pid = self.transport.pid if self.transport is not None else None
        if pid is not None and self.running:
            os.killpg(pid, getattr(signal, f"SIG{name}"))

    def describe(self) -> str:
        """
        The command and its output, for failure messages.
        """
        return (
            f"command: {self.argv}\nexit code: {self.exit_code}, signal: {self.exit_signal}\n"
            f"stdout:\n{self.out.decode('utf-8', 'replace')[-4000:]}\n"
            f"stderr:\n{self.err.decode('utf-8', 'replace')[-4000:]}"
        )


def in_new_session(argv: Sequence[str]) -> list[str]:
    """
    Wrap a Python command so that it starts in a session (and process group) of its own.

    :param argv: the command, ``argv[0]`` being a Python interpreter.
    :returns: the wrapped command; it keeps the same pid.
    """
    launcher = (
        "import os, sys; os.setsid(); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    return [argv[0], "-c", launcher, *argv[1:]]


def spawn(
    testcase: TestCase, argv: Sequence[str], env: dict[str, str] | None = None, cwd: str = CHECKOUT
) -> Child:
    """
    Start a child and make sure it is gone at the end of the test (SIGKILL if needed).

    :param testcase: registers the cleanup.
    :param argv: the command, ``argv[0]`` being the executable.
    :param env: its environment (default: :func:`checkout_env`).
    :param cwd: its working directory.
    :returns: the child.
    """
    child = Child(argv)
    reactor.spawnProcess(
        child, argv[0], list(argv), env if env is not None else checkout_env(), path=cwd
    )

    async def reap() -> None:
        if child.running:
            child.signal("KILL")
            await child.ended

    testcase.addCleanup(lambda: Deferred.fromCoroutine(reap()))
    return child


async def wait_until(
    check: Callable[[], bool], child: Child, what: str, deadline: float = 60.0
) -> None:
    """
    Poll ``check`` until it is true; fail with the child's output after ``deadline`` seconds,
    or as soon as the child ends without ``check`` being true.

    :param check: the condition.
    :param child: the child whose output explains a failure.
    :param what: what was expected, for the message.
    :param deadline: seconds.
    :raises AssertionError: when the condition is not met.
    """
    start = reactor.seconds()
    while not check():
        if not child.running:
            if check():
                return
            raise AssertionError(f"the process ended before {what}\n{child.describe()}")
        if reactor.seconds() - start > deadline:
            raise AssertionError(f"no {what} within {deadline}s\n{child.describe()}")
        await deferLater(reactor, 0.05)


async def wait_ended(child: Child, what: str, deadline: float = 30.0) -> int | None:
    """
    Wait for the child to end.

    :param child: the child.
    :param what: why it should end, for the message.
    :param deadline: seconds.
    :returns: its exit code.
    :raises AssertionError: when it is still running after ``deadline`` seconds.
    """
    await wait_until(lambda: not child.running, child, f"exit after {what}", deadline)
    return child.exit_code


def stopped_by(child: Child, signum: int) -> bool:
    """
    Whether the child ended cleanly after being sent ``signum``: exit status 0, or death by that
    same signal (twistd re-raises the signal that stopped it once it has shut down).
    """
    return child.exit_code == 0 or child.exit_signal == signum
