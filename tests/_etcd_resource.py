"""
A minimal in-memory etcd v2 key space as a ``twisted.web`` resource, for the
few unit tests that need what the public :class:`txetcd2.testing.MemoryEtcd`
deliberately does not offer:

- stream bytes cut into pieces of any size, several events in one write
  (:attr:`EtcdResource.chunks`, :meth:`EtcdResource.apply`): MemoryEtcd
  writes one whole event at a time;
- canned answers etcd would never send, or a stale member would
  (:attr:`EtcdResource.raw`): a 200 without ``X-Etcd-Index``, HTML pages
  from a proxy, a body that never ends, an index older than one already seen.

Everything else (writes, TTLs, failing, silent or unanswering members,
``EventIndexCleared``, v2 disabled, ended or truncated streams) is tested
against ``MemoryEtcd``.

It answers ``GET /v2/keys/<key>`` reads of keys, ``?wait=true`` long-polls
and ``?wait=true&stream=true`` streams (``NOT_DONE_YET``; one JSON event per
line) from its history, each with ``X-Etcd-Index``. Tests change keys with
:meth:`EtcdResource.set` or :meth:`EtcdResource.apply`, behind treq's
``RequestTraversalAgent``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import attrs
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

Event = dict[str, Any]


@attrs.define(eq=False)
class Watch:
    """
    A pending long-poll or an open stream.
    """

    request: Request
    key: str
    stream: bool
    #: events below this index are not sent
    since: int
    open: bool = True


class EtcdResource(Resource):
    """
    The keys of one etcd member, its whole history, and its watches.

    :ivar index: the store index (``X-Etcd-Index``).
    :ivar chunks: cuts the bytes written to a stream at once into the pieces
        sent separately (default: one piece).
    :ivar pump: called after each piece (set it to the agent's ``flush``).
    :ivar raw: canned answers ``(status, headers, body)`` sent as they are (no
        ``X-Etcd-Index`` unless given), for the next requests, first first; a
        body of ``None`` sends the headers and keeps the body open.
    :ivar requests: every request received, as ``(host, path, query)``.
    :ivar watches: the watches still open.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.index = 0
        self.history: list[Event] = []
        self.values: dict[str, tuple[str, int]] = {}
        self.chunks: Callable[[bytes], list[bytes]] = lambda data: [data]
        self.pump: Callable[[], None] = lambda: None
        self.raw: list[tuple[int, dict[str, str], bytes | None]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.watches: list[Watch] = []

    def set(self, key: str, value: str) -> int:
        """
        Set a key and notify the watches.

        :returns: the change's index.
        """
        return self.apply([(key, value)])[0]

    def apply(self, changes: list[tuple[str, str]]) -> list[int]:
        """
        Set several keys, then send the events to each stream in one write
        (cut by :attr:`chunks`): several events per chunk, lines across chunks.

        :param changes: ``(key, value)`` pairs.
        :returns: their indexes.
        """
        events = [self._change(key, value) for key, value in changes]
        for watch in list(self.watches):
            wanted = [e for e in events if _matches(watch, e)]
            if not wanted:
                continue
            if watch.stream:
                self._write(watch, b"".join(_line(e) for e in wanted))
            else:
                self._answer_poll(watch, wanted[0])
        return [e["node"]["modifiedIndex"] for e in events]

    def _change(self, key: str, value: str) -> Event:
        self.index += 1
        old = self.values.get(key)
        self.values[key] = (value, self.index)
        node = {
            "key": key,
            "value": value,
            "modifiedIndex": self.index,
            "createdIndex": self.index,
        }
        event: Event = {"action": "set", "node": node}
        if old is not None:
            event["prevNode"] = _leaf(key, *old)
        self.history.append(event)
        return event

    def render_GET(self, request: Request) -> bytes | int:
        host = (request.getHeader("host") or "").lower()
        path = unquote(request.path.decode("ascii"))
        query = {k.decode(): v[0].decode() for k, v in (request.args or {}).items()}
        self.requests.append((host, path, query))
        if self.raw:
            status, headers, raw_body = self.raw.pop(0)
            request.setResponseCode(status)
            for name, value in headers.items():
                request.setHeader(name, value)
            if raw_body is None:
                request.write(b"")
                return NOT_DONE_YET
            return raw_body
        request.setHeader("content-type", "application/json")
        request.setHeader("x-etcd-index", str(self.index))
        if not path.startswith("/v2/keys"):
            request.setResponseCode(404)
            return b"404 page not found\n"
        key = "/" + path[len("/v2/keys") :].strip("/")
        if query.get("wait") == "true":
            return self._watch(request, key, query)
        if key not in self.values:
            request.setResponseCode(404)
            error = {"errorCode": 100, "message": "Key not found", "cause": key}
            return _json({**error, "index": self.index})
        return _json({"action": "get", "node": _leaf(key, *self.values[key])})

    def _watch(self, request: Request, key: str, query: dict[str, str]) -> int:
        stream = query.get("stream") == "true"
        watch = Watch(request, key, stream, int(query.get("waitIndex", self.index + 1)))
        found = [e for e in self.history if _matches(watch, e)]
        if found and not stream:
            request.write(_line(found[0]))
            request.finish()
            return NOT_DONE_YET
        if found:
            # etcd's trap: a stream started inside history sends one event, then nothing.
            request.write(_line(found[0]))
            watch.since = 2**63
        self.watches.append(watch)
        request.notifyFinish().addBoth(lambda _: self._close(watch))
        # etcd flushes a watch's headers at once, long-polls included.
        request.write(b"")
        return NOT_DONE_YET

    def _write(self, watch: Watch, data: bytes) -> None:
        for piece in self.chunks(data):
            if not watch.open:
                return
            watch.request.write(piece)
            self.pump()

    def _answer_poll(self, watch: Watch, event: Event) -> None:
        self._close(watch)
        watch.request.write(_line(event))
        watch.request.finish()
        self.pump()

    def _close(self, watch: Watch) -> None:
        watch.open = False
        if watch in self.watches:
            self.watches.remove(watch)


def _matches(watch: Watch, event: Event) -> bool:
    node = event["node"]
    return bool(node["key"] == watch.key and node["modifiedIndex"] >= watch.since)


def _leaf(key: str, value: str, index: int) -> dict[str, Any]:
    return {"key": key, "value": value, "modifiedIndex": index, "createdIndex": index}


def _line(event: Event) -> bytes:
    return json.dumps(event).encode() + b"\n"


def _json(body: object) -> bytes:
    return json.dumps(body).encode() + b"\n"


def cut_every(size: int) -> Callable[[bytes], list[bytes]]:
    """
    A :attr:`EtcdResource.chunks` cutting data into pieces of ``size`` bytes.
    """
    return lambda data: [data[i : i + size] for i in range(0, len(data), size)]
