"""
CPU per get of each layer above the agent: ``python -m bench._steps [ROUNDS]``.

No etcd and no sockets: an in-memory agent answers every request with the
same etcd answer (the pool's own answer object, its body complete), 64
requests at a time, as workload C's answers come. Each step calls one layer
more than the one before it, so the differences are what each layer costs:

- ``answer``: the agent alone (building the answer object);
- ``treq``: treq's ``HTTPClient.request`` over it (its cookie and decoder
  agents and its response wrapper);
- ``exchange``: ``Exchange.send`` (the deadline, the reading of the answer);
- ``session``: ``Session.call`` with the key space's decoding (member order,
  the cluster checks, the tracking of the call, the JSON and the models);
- ``client``: ``EtcdClient.get`` (the key and the request).

The collector is off (a get makes no reference cycle; see
``tests/integration/test_pool.py``), so the figures are the work itself.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers

BODY = (
    b'{"action":"get","node":{"key":"/bench/c","value":"hello",'
    b'"modifiedIndex":4,"createdIndex":4}}\n'
)

#: etcd 3.4's headers for that answer, as the parser gives them (named as
#: Twisted's :class:`Headers` spells them).
RAW = [
    *(b"Access-Control-Allow-Headers", b"accept, content-type, authorization"),
    *(b"Access-Control-Allow-Methods", b"POST, GET, OPTIONS, PUT, DELETE"),
    *(b"Access-Control-Allow-Origin", b"*"),
    *(b"Content-Type", b"application/json"),
    *(b"X-Etcd-Cluster-Id", b"cdf818194e3a8c32"),
    *(b"X-Etcd-Index", b"4"),
    *(b"X-Raft-Index", b"9"),
    *(b"X-Raft-Term", b"2"),
    *(b"Date", b"Mon, 30 Nov 2026 15:50:00 GMT"),
    *(b"Content-Length", b"%d" % len(BODY)),
]

URL = "http://127.0.0.1:2379"


class _Source:
    """The connection an answer's body would come from: never used here."""

    def pause_reading(self) -> None:
        """Nothing to pause."""

    def resume_reading(self) -> None:
        """Nothing to resume."""

    def abort(self) -> None:
        """Nothing to drop."""


class _Sent:
    """The request an answer is given."""

    def __init__(self, method: bytes, uri: bytes, headers: Headers) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers


class MemoryAgent:
    """
    An agent whose requests are answered when :meth:`answer_all` is called.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[Deferred[Any], bytes, bytes, Headers | None]] = []

    def request(
        self, method: bytes, uri: bytes, headers: Headers | None = None, body: Any = None
    ) -> Deferred[Any]:
        """
        Take a request; its answer comes with :meth:`answer_all`.

        :returns: the answer's Deferred.
        """
        d: Deferred[Any] = Deferred()
        self.pending.append((d, method, uri, headers))
        return d

    def answer_all(self) -> None:
        """Answer every request taken, in order, each with its body complete."""
        from txetcd2._transport.http11 import headers_of
        from txetcd2._transport.response import BODY_DONE, PoolResponse

        pending, self.pending = self.pending, []
        for d, method, uri, headers in pending:
            sent = _Sent(method, uri, headers or Headers())
            table: dict[bytes, list[bytes]] = {}
            for i in range(0, len(RAW), 2):  # as the connection builds it
                table.setdefault(RAW[i], []).append(RAW[i + 1])
            answer = PoolResponse(sent, 200, b"OK", headers_of(table), len(BODY), _Source())
            answer.body_data(BODY)
            answer.body_end(BODY_DONE)
            d.callback(answer)


def steps(agent: MemoryAgent, reactor: Any) -> dict[str, Callable[[], Deferred[Any]]]:
    """
    :returns: each step's call, by name.
    """
    from txetcd2 import EtcdClient
    from txetcd2._api.keys import decode
    from txetcd2._session.session import Request
    from txetcd2._transport.agent import NO_COOKIES
    from txetcd2._transport.exchange import RequestURL

    client = EtcdClient(URL, reactor=reactor, agent=agent)  # type: ignore[arg-type]
    session = client._session
    exchange = session.exchange
    http: Any = exchange._http
    key_url = URL + "/v2/keys/bench/c"
    headers = Headers()
    return {
        "answer": lambda: agent.request(b"GET", key_url.encode(), headers),
        "treq": lambda: http.request(
            "GET",
            RequestURL(key_url),
            headers=headers,
            cookies=NO_COOKIES,
            allow_redirects=False,
            unbuffered=True,
            reactor=reactor,
        ),
        "exchange": lambda: exchange.send(URL, "GET", "/v2/keys/bench/c", None, 5.0),
        "session": lambda: session.call(
            Request("GET", "/v2/keys/bench/c", "/bench/c", True, None, keyspace=True),
            session.deadline(None),
            None,
            decode,
        ),
        "client": lambda: client.get("bench/c"),
    }


def measure(rounds: int = 5, gets: int = 64 * 500) -> dict[str, float]:
    """
    :returns: the best CPU microseconds per call of each step, over ``rounds``.
    """
    from twisted.internet import reactor

    agent = MemoryAgent()
    best: dict[str, float] = {}
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, call in steps(agent, reactor).items():
                start = time.process_time()
                for _ in range(gets // 64):
                    for _ in range(64):
                        call().addErrback(lambda f: print(f, file=sys.stderr))
                    agent.answer_all()
                    reactor.runUntilCurrent()  # type: ignore[attr-defined]
                took = (time.process_time() - start) / gets * 1e6
                best[name] = min(best.get(name, took), took)
    finally:
        gc.enable()
    return best


def main(argv: list[str]) -> None:
    """
    Print each step's CPU per get and what it adds to the step before.

    :param argv: optionally the number of rounds (default 5).
    """
    figures = measure(int(argv[0]) if argv else 5)
    before = 0.0
    for name, us in figures.items():
        print(f"{name:10s} {us:6.1f} us per get  (+{us - before:4.1f})")
        before = us


if __name__ == "__main__":
    main(sys.argv[1:])
