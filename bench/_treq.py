"""
What treq's ``HTTPClient`` costs a get, measured in place:
``python -m bench._treq URL [ROUNDS] [N]``.

``bench._steps`` measures each layer over an in-memory agent, where the
code is hot in the CPU's caches; this measures the whole client in workload
C (``N`` gets of one key, default 20,000, 64 in flight) against a real etcd,
in alternating rounds of fresh worker processes, each with one of the
layers treq's ``HTTPClient.request`` puts around every request replaced by
a pass-through (in that worker's process only):

- ``shipped``: the client as it is;
- ``no-cookie-agent``: without Twisted's ``CookieAgent`` (which builds a
  ``_FakeStdlibRequest`` per request, parsing the URL again with
  ``urllib.parse``, whatever the jar holds);
- ``lazy-cookie-request``: with Twisted's ``CookieAgent`` as
  ``bench/upstream/twisted-lazy-cookie-request.patch`` would make it: its
  ``_FakeStdlibRequest`` parses the URL only when the jar asks for its
  parts (ours never does);
- ``no-decoder-agent``: without Twisted's ``ContentDecoderAgent`` (a copy
  of the headers and a callback per request);
- ``no-response-wrapper``: without treq's ``_Response`` wrapper;
- ``no-treq``: ``Exchange.open`` calling the agent pool itself.

and ``aio_etcd`` for the ratio the goal is stated in. Prints, per mode, the
medians of the rounds: CPU microseconds per get, gets per second and the
ratio to aio_etcd. For ``https://`` members, give the CA in ``BENCH_CA``.
None of these variants is a supported configuration: they tell what each
of treq's layers costs.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

IN_FLIGHT = 64

#: The modes, in the order they run in each round, with what each one is.
MODES = {
    "shipped": "the client as shipped",
    "no-cookie-agent": "without treq's CookieAgent",
    "lazy-cookie-request": "with Twisted patched as bench/upstream proposes",
    "no-decoder-agent": "without treq's ContentDecoderAgent",
    "no-response-wrapper": "without treq's _Response wrapper",
    "no-treq": "Exchange calling the agent pool itself",
    "aio_etcd": "aio_etcd (the reference)",
}


class _PassThrough:
    """An agent wrapper that adds nothing: it stands in for one of treq's."""

    def __init__(self, agent: Any, *ignored: object) -> None:
        self._agent = agent

    def request(
        self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None
    ) -> Any:
        return self._agent.request(method, uri, headers, bodyProducer)


def _lazy_cookie_request() -> None:
    # twisted.web.client._FakeStdlibRequest as the patch in bench/upstream
    # makes it (the URL parsed, and the headers made, when first asked for).
    from functools import cached_property

    from twisted.web import client
    from twisted.web.http_headers import Headers

    class LazyRequest(client._FakeStdlibRequest):
        def __init__(self, uri: bytes) -> None:
            self.uri = uri.decode("ascii")
            self._raw_uri = uri
            self._twistedHeaders = None  # type: ignore[assignment]
            self.unverifiable = False

        @cached_property
        def _parsed(self) -> Any:
            return client.URI.fromBytes(self._raw_uri)

        @cached_property
        def type(self) -> str:  # type: ignore[override]
            return str(self._parsed.scheme.decode("ascii"))

        @cached_property
        def host(self) -> str:  # type: ignore[override]
            uri = self._parsed
            host = str(uri.host.decode("ascii"))
            if (uri.scheme, uri.port) not in ((b"http", 80), (b"https", 443)):
                host += f":{uri.port}"
            return host

        @cached_property
        def origin_req_host(self) -> str:  # type: ignore[override]
            return str(self._parsed.host.decode("ascii"))

        def has_header(self, header: str) -> bool:
            found = self._twistedHeaders
            return found is not None and found.hasHeader(header.encode("ascii"))

        def add_unredirected_header(self, name: str, value: str) -> None:
            if self._twistedHeaders is None:
                self._twistedHeaders = Headers()
            self._twistedHeaders.addRawHeader(name.encode("ascii"), value.encode("ascii"))

        def get_header(self, name: str, default: Any = None) -> Any:
            found = self._twistedHeaders
            values = default if found is None else found.getRawHeaders(name, default)
            return None if values is None else values[0]

    client._FakeStdlibRequest = LazyRequest  # type: ignore[misc]


def _without_treq() -> None:
    # Exchange.open as it is, with treq's HTTPClient.request replaced by a
    # direct call of the agent pool (same method, URL, headers and body).
    from txetcd2._transport.exchange import Exchange

    setup = Exchange.__init__

    def __init__(self: Exchange, http: Any, clock: Any) -> None:
        setup(self, http, clock)
        agent = http._agent

        def request(method: str, url: Any, *, headers: Any, data: Any, **treq_only: Any) -> Any:
            text = url if isinstance(url, str) else url.to_text()
            return agent.request(method.encode("ascii"), text.encode("ascii"), headers, data)

        self._request = request

    Exchange.__init__ = __init__  # type: ignore[method-assign]


def _patch(mode: str) -> None:
    import treq.client

    patches: dict[str, Callable[[], None]] = {
        "shipped": lambda: None,
        "no-cookie-agent": lambda: setattr(treq.client, "CookieAgent", _PassThrough),
        "lazy-cookie-request": _lazy_cookie_request,
        "no-decoder-agent": lambda: setattr(treq.client, "ContentDecoderAgent", _PassThrough),
        "no-response-wrapper": lambda: setattr(treq.client, "_Response", lambda r, _: r),
        "no-treq": _without_treq,
    }
    patches[mode]()


def worker(mode: str, url: str, n: int) -> Any:
    """
    Run workload C in this process, in one mode.

    :returns: the figures of :func:`bench._workloads.measure`.
    """
    import warnings

    from bench._workloads import measure

    warnings.simplefilter("ignore", DeprecationWarning)
    if mode == "aio_etcd":
        return measure("aio_etcd", "C", url, n, IN_FLIGHT, "bench/treq")
    _patch(mode)
    return measure("txetcd2", "C", url, n, IN_FLIGHT, "bench/treq")


def _run(mode: str, url: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench._treq", "--worker", mode, url, str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])["get"]
    return figures


def main(argv: list[str]) -> None:
    """
    Print the figures of each mode.

    :param argv: ``URL [ROUNDS] [N]``, or ``--worker MODE URL N``.
    """
    if argv and argv[0] == "--worker":
        print(json.dumps(worker(argv[1], argv[2], int(argv[3]))))
        return
    url = argv[0]
    rounds = int(argv[1]) if len(argv) > 1 else 3
    n = int(argv[2]) if len(argv) > 2 else 20000
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    ops: dict[str, list[float]] = {mode: [] for mode in MODES}
    for r in range(rounds):
        for mode in MODES:
            figures = _run(mode, url, n)
            cpu[mode].append(figures["cpu_us"])
            ops[mode].append(figures["ops"])
            print(
                f"round {r + 1}: {mode:20} {figures['cpu_us']:6.1f} us/get "
                f"{figures['ops']:8.0f} gets/s",
                flush=True,
            )
    reference = [ops["aio_etcd"][r] for r in range(rounds)]
    print(f"\nmedians of {rounds} rounds, workload C ({n} gets, {IN_FLIGHT} in flight):")
    for mode, what in MODES.items():
        ratio = statistics.median(ops[mode][r] / reference[r] for r in range(rounds))
        print(
            f"{mode:20} {statistics.median(cpu[mode]):6.1f} us/get "
            f"{statistics.median(ops[mode]):8.0f} gets/s {ratio:5.2f}x aio_etcd  ({what})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
