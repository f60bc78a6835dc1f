"""
``twistd etcd-watch``: the command-line options and the service they build.

Loaded lazily by the dropin ``twisted/plugins/txetcd2_plugin.py``.
"""

from __future__ import annotations

import atexit
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TextIO

from twisted.application.service import IService, MultiService
from twisted.internet.task import Clock
from twisted.python import usage

from txetcd2._client import EtcdClient
from txetcd2._reactor import default_reactor
from txetcd2._session.members import parse_endpoints
from txetcd2._tap.lines import FORMATTERS
from txetcd2._tap.service import EmbeddedEtcd, EtcdSource, FixedEndpoints, WatchService
from txetcd2._version import __version__
from txetcd2._wire.errors import EtcdError
from txetcd2._wire.keys import normalize_key

#: Options passed to EtcdClient only when given, and only if this EtcdClient accepts them.
_SECURITY_OPTIONS = ("ca", "cert", "key", "username", "password")


def _client_accepts(name: str) -> bool:
    return name in inspect.signature(EtcdClient).parameters


class Options(usage.Options):
    """
    The options of ``twistd etcd-watch``.
    """

    synopsis = (
        "--endpoints URL[,URL...] --prefix KEY [--recursive] [--index N] "
        "[--ca F --cert F --key F] [--username U --password-file F] [--format json|text] "
        "[--embedded]"
    )
    longdesc = (
        "Watch an etcd v2 key (or, with --recursive, everything below it) and print one line "
        "per change on stdout: a JSON object by default (action, key, value, indexes, previous "
        "value). Reconnects and resyncs are logged. With --embedded a private etcd is started "
        "for the life of the service (the etcd binary must be installed)."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        ["endpoints", "e", None, "Comma-separated etcd client URLs, e.g. http://127.0.0.1:2379."],
        ["prefix", "p", None, "The key or directory to watch, e.g. /app."],
        ["index", "i", None, "Report changes from this etcd index on (default: from now on)."],
        ["ca", None, None, "CA certificate file (PEM) to verify the members' certificates."],
        ["cert", None, None, "Client certificate file (PEM)."],
        ["key", None, None, "Client private key file (PEM)."],
        ["username", "u", None, "User name for etcd's basic auth."],
        ["password-file", None, None, "File holding the password (first line)."],
        ["format", "f", "json", "Output format: json (one JSON object per line) or text."],
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        ["recursive", "r", "Watch everything below --prefix."],
        ["embedded", None, "Start a private etcd for the life of the service."],
    ]

    def opt_version(self) -> None:
        """
        Display txetcd2's version (and Twisted's) and exit.
        """
        from twisted import copyright

        print(f"txetcd2 version: {__version__}")
        print(f"Twisted version: {copyright.version}")
        sys.exit(0)

    def postOptions(self) -> None:
        """
        Check the options together; every problem is a :class:`usage.UsageError`.
        """
        self["client_options"] = {}
        self._check_source()
        self._check_prefix()
        self._check_index()
        if self["format"] not in FORMATTERS:
            raise usage.UsageError(
                f"--format must be one of {', '.join(sorted(FORMATTERS))}, not {self['format']!r}"
            )
        self._check_security()

    def _check_source(self) -> None:
        if self["embedded"]:
            if self["endpoints"]:
                raise usage.UsageError("give either --endpoints or --embedded, not both")
            from txetcd2._embedded.harness import EtcdBinaryNotFound, find_etcd_binary

            try:
                find_etcd_binary()
            except EtcdBinaryNotFound as e:
                raise usage.UsageError(f"--embedded needs the etcd server: {e}") from None
            return
        if not self["endpoints"]:
            raise usage.UsageError(
                "--endpoints is required (e.g. --endpoints http://127.0.0.1:2379), "
                "or use --embedded to start a private etcd"
            )
        try:
            self["endpoints"] = parse_endpoints(self["endpoints"])
        except (TypeError, ValueError) as e:
            raise usage.UsageError(f"--endpoints: {e}") from None

    def _check_prefix(self) -> None:
        if not self["prefix"]:
            raise usage.UsageError("--prefix is required: the key or directory to watch")
        try:
            self["prefix"] = normalize_key(self["prefix"])
        except (TypeError, ValueError) as e:
            raise usage.UsageError(f"--prefix: {e}") from None

    def _check_index(self) -> None:
        index = self["index"]
        if index is None:
            return
        try:
            self["index"] = int(index)
        except ValueError:
            raise usage.UsageError(f"--index must be a whole number, not {index!r}") from None
        if self["index"] < 1:
            raise usage.UsageError(f"--index must be 1 or more, not {index!r}")

    def _check_security(self) -> None:
        given: dict[str, Any] = {}
        for name in ("ca", "cert", "key", "username"):
            if self[name]:
                given[name] = self[name]
        if self["key"] and not self["cert"]:
            raise usage.UsageError("--key needs --cert (the certificate it belongs to)")
        if bool(self["username"]) != bool(self["password-file"]):
            raise usage.UsageError("--username and --password-file go together")
        for name in ("ca", "cert", "key", "password-file"):
            path = self[name]
            if path:
                try:
                    with open(path, encoding="utf-8") as f:
                        text = f.read()
                except OSError as e:
                    raise usage.UsageError(f"--{name}: cannot read {path}: {e.strerror}") from None
                if name == "password-file":
                    given["password"] = text.splitlines()[0] if text else ""
        for name in _SECURITY_OPTIONS:
            if name in given and not _client_accepts(name):
                raise usage.UsageError(
                    f"this version of txetcd2 does not support TLS/auth option {name!r}; "
                    "upgrade txetcd2"
                )
        self["client_options"] = given
        self._check_client()

    def _check_client(self) -> None:
        """
        Build (and drop) a client with these options, so that the client's own checks of
        endpoints, certificates and credentials become usage errors instead of tracebacks.
        """
        endpoints = self["endpoints"] or ["http://127.0.0.1:2379"]
        try:
            probe = EtcdClient(endpoints, reactor=Clock(), **self["client_options"])
        except (TypeError, ValueError, OSError, EtcdError) as e:
            raise usage.UsageError(str(e)) from None
        probe.close()


def _stdout_writer(out: TextIO) -> Any:
    def write_line(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    return write_line


def exit_status_at_end(code: int) -> None:
    """
    Make the process exit with ``code`` once twistd finished (twistd itself always exits 0
    after the reactor stopped): registered with :mod:`atexit`, so twistd's own cleanup (log,
    pid file) runs first.

    :param code: the exit status.
    """

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    atexit.register(leave)


def makeService(
    options: Options,
    reactor: Any = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    exit_status: Callable[[int], None] = exit_status_at_end,
) -> IService:
    """
    Build the ``etcd-watch`` service from parsed options.

    :param options: the parsed :class:`Options`.
    :param reactor: the reactor (default: the global one; this is a composition root).
    :param out: where event lines go (default: the process's stdout as it is now, before
        twistd redirects ``sys.stdout`` into the log).
    :param err: where the reason of a fatal error goes (default: the process's stderr as it
        is now).
    :param exit_status: called with the exit status (1) when watching cannot go on.
    :returns: the service to run under the application.
    """
    if reactor is None:
        reactor = default_reactor()
    if out is None:
        out = sys.stdout
    if err is None:
        err = sys.stderr
    errors = err
    client_options: dict[str, Any] = dict(options["client_options"])
    source: EtcdSource = (
        EmbeddedEtcd(reactor) if options["embedded"] else FixedEndpoints(options["endpoints"])
    )

    def client_factory(endpoints: Sequence[str]) -> EtcdClient:
        return EtcdClient(list(endpoints), reactor=reactor, **client_options)

    def on_fatal() -> None:
        errors.write(f"etcd-watch: {watch.fatal_error or 'watching cannot go on'}\n")
        errors.flush()
        exit_status(1)
        if getattr(reactor, "running", False):
            reactor.stop()

    top = MultiService()
    watch = WatchService(
        source,
        client_factory,
        key=options["prefix"],
        recursive=bool(options["recursive"]),
        index=options["index"],
        formatter=FORMATTERS[options["format"]],
        write_line=_stdout_writer(out),
        on_fatal=on_fatal,
    )
    watch.setName("etcd-watch")
    watch.setServiceParent(top)
    return top
