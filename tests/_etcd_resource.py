"""
A small in-memory etcd v2 key space as a ``twisted.web`` resource, for unit
tests behind treq's ``RequestTraversalAgent``.

It answers ``GET /v2/keys/<key>`` reads, ``?wait=true`` long-polls (with or
without ``waitIndex``, ``401 EventIndexCleared`` below its history) and
``?wait=true&stream=true`` streams (``NOT_DONE_YET``; one JSON event per
line), each with ``X-Etcd-Index``. Tests change the key space with
:meth:`EtcdResource.set` / :meth:`EtcdResource.delete` and control how the
stream bytes are cut (:attr:`EtcdResource.chunks`), which members stay silent
(:attr:`EtcdResource.silent`), canned failures (:attr:`EtcdResource.failures`),
clean ends (:meth:`EtcdResource.finish_streams`) and truncated bodies
(:meth:`EtcdResource.truncate_streams`). Members are told apart by the
``Host`` header (the agent ignores the host).
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
    host: str
    key: str
    recursive: bool
    stream: bool
    #: events below this index are not sent
    since: int
    open: bool = True


class EtcdResource(Resource):
    """
    The key space of one etcd cluster, answering on every member.

    :param history: how many events are kept for ``waitIndex`` (etcd: 1000).
    :ivar index: the store index (``X-Etcd-Index``).
    :ivar chunks: cuts the bytes written to a stream at once into the pieces
        sent separately (default: one piece).
    :ivar pump: called after each piece (set it to the agent's ``flush``).
    :ivar silent: hosts whose watches are accepted (headers sent) but get no
        new event, like a member that lost quorum (history is still answered).
    :ivar unanswered: hosts that never answer a request (not even headers),
        like a paused member.
    :ivar failures: canned answers ``(status, body)`` for the next watch or
        read requests, first first.
    :ivar raw: canned answers ``(status, headers, body)`` sent as they are (no
        ``X-Etcd-Index`` unless given), for the next requests, first first; a
        body of ``None`` sends the headers and keeps the body open.
    :ivar disabled: answer like etcd without ``--enable-v2``: a plain-text 404
        for every ``/v2`` path; ``/version`` still answers.
    :ivar requests: every request received, as ``(host, path, query)``.
    :ivar watches: the watches still open.
    """

    isLeaf = True

    def __init__(self, history: int = 1000) -> None:
        super().__init__()
        self.index = 0
        self.history: list[Event] = []
        self.history_size = history
        self.values: dict[str, tuple[str, int, int]] = {}
        self.chunks: Callable[[bytes], list[bytes]] = lambda data: [data]
        self.pump: Callable[[], None] = lambda: None
        self.silent: set[str] = set()
        self.unanswered: set[str] = set()
        self.failures: list[tuple[int, dict[str, Any]]] = []
        self.raw: list[tuple[int, dict[str, str], bytes | None]] = []
        self.disabled = False
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.watches: list[Watch] = []

    # -- changes ---------------------------------------------------------------

    def set(self, key: str, value: str) -> int:
        """
        Set a key and notify the watches.

        :returns: the change's index.
        """
        return self.apply([(key, value)])[0]

    def delete(self, key: str) -> int:
        """
        Delete a key, or a directory with everything below it, and notify the watches.

        :returns: the change's index.
        """
        return self.apply([(key, None)])[0]

    def apply(self, changes: list[tuple[str, str | None]]) -> list[int]:
        """
        Apply several changes, then send them to each stream in one write
        (cut by :attr:`chunks`): several events per chunk, lines across chunks.

        :param changes: ``(key, value)``; ``None`` deletes.
        :returns: their indexes.
        """
        events = [self._change(key, value) for key, value in changes]
        for watch in list(self.watches):
            wanted = [e for e in events if self._matches(watch, e)]
            if not wanted or watch.host in self.silent:
                continue
            if watch.stream:
                self._write(watch, b"".join(_line(e) for e in wanted))
            else:
                self._answer_poll(watch, wanted[0])
        return [e["node"]["modifiedIndex"] for e in events]

    def _change(self, key: str, value: str | None) -> Event:
        self.index += 1
        old = self.values.get(key)
        if value is None:
            for name in [k for k in self.values if k == key or k.startswith(key + "/")]:
                del self.values[name]
            node: dict[str, Any] = {"key": key, "modifiedIndex": self.index}
            node["createdIndex"] = old[1] if old else self.index
            event: Event = {"action": "delete", "node": node}
        else:
            created = self.index
            self.values[key] = (value, created, self.index)
            node = {"key": key, "value": value, "modifiedIndex": self.index}
            node["createdIndex"] = created
            event = {"action": "set", "node": node}
        if old is not None:
            event["prevNode"] = {
                "key": key,
                "value": old[0],
                "createdIndex": old[1],
                "modifiedIndex": old[2],
            }
        self.history.append(event)
        del self.history[: -self.history_size]
        return event

    # -- connections -----------------------------------------------------------

    def finish_streams(self) -> None:
        """
        End every open stream cleanly (like an old server's idle close).
        """
        for watch in [w for w in self.watches if w.stream]:
            self._close(watch)
            watch.request.finish()
        self.pump()

    def truncate_streams(self, partial: bytes = b"") -> None:
        """
        Send ``partial`` (e.g. half an event), then drop every stream's
        connection without ending the body (a member shutting down).
        """
        for watch in [w for w in self.watches if w.stream]:
            if partial:
                watch.request.write(partial)
            self._close(watch)
            watch.request.channel.transport.abortConnection()  # type: ignore[union-attr]
        self.pump()

    # -- the resource ----------------------------------------------------------

    def render_GET(self, request: Request) -> bytes | int:
        host = (request.getHeader("host") or "").lower()
        path = unquote(request.path.decode("ascii"))
        query = {k.decode(): v[0].decode() for k, v in (request.args or {}).items()}
        self.requests.append((host, path, query))
        if host in self.unanswered:
            return NOT_DONE_YET
        if self.raw:
            status, headers, raw_body = self.raw.pop(0)
            request.setResponseCode(status)
            for name, value in headers.items():
                request.setHeader(name, value)
            if raw_body is None:
                request.write(b"")
                return NOT_DONE_YET
            return raw_body
        if self.disabled:
            return self._disabled(request, path)
        request.setHeader("content-type", "application/json")
        request.setHeader("x-etcd-index", str(self.index))
        if self.failures:
            status, body = self.failures.pop(0)
            request.setResponseCode(status)
            return _json(body)
        if not path.startswith("/v2/keys"):
            request.setResponseCode(404)
            return b"404 page not found\n"
        key = "/" + path[len("/v2/keys") :].strip("/")
        if query.get("wait") == "true":
            return self._watch(request, host, key, query)
        return self._read(request, key, query.get("recursive") == "true")

    def _disabled(self, request: Request, path: str) -> bytes:
        if path == "/version":
            request.setHeader("content-type", "application/json")
            return _json({"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})
        request.setResponseCode(404)
        request.setHeader("content-type", "text/plain; charset=utf-8")
        return b"404 page not found\n"

    def _read(self, request: Request, key: str, recursive: bool) -> bytes:
        if key in self.values:
            return _json({"action": "get", "node": self._leaf(key)})
        below = sorted(k for k in self.values if key == "/" or k.startswith(key + "/"))
        if not below:
            request.setResponseCode(404)
            return _json(self._error(100, "Key not found", key))
        return _json({"action": "get", "node": self._dir(key, below, recursive)})

    def _leaf(self, key: str) -> dict[str, Any]:
        value, created, modified = self.values[key]
        return {"key": key, "value": value, "createdIndex": created, "modifiedIndex": modified}

    def _dir(self, key: str, below: list[str], recursive: bool) -> dict[str, Any]:
        prefix = "" if key == "/" else key
        children: dict[str, list[str]] = {}
        for name in below:
            child = prefix + "/" + name[len(prefix) + 1 :].split("/")[0]
            children.setdefault(child, []).append(name)
        nodes = []
        for child, names in children.items():
            if child in self.values:
                nodes.append(self._leaf(child))
            elif recursive:
                nodes.append(self._dir(child, names, True))
            else:
                nodes.append({"key": child, "dir": True})
        return {"key": key, "dir": True, "nodes": nodes}

    def _watch(self, request: Request, host: str, key: str, query: dict[str, str]) -> bytes | int:
        stream = query.get("stream") == "true"
        since = int(query.get("waitIndex", self.index + 1))
        watch = Watch(request, host, key, query.get("recursive") == "true", stream, since)
        if since <= self.index:
            oldest = self.history[0]["node"]["modifiedIndex"] if self.history else self.index + 1
            if since < oldest:
                request.setResponseCode(400)
                message = f"the requested history has been cleared [{oldest}/{since}]"
                return _json(self._error(401, "The event in requested index is outdated", message))
            old = [e for e in self.history if e["node"]["modifiedIndex"] >= since]
            found = [e for e in old if self._matches(watch, e)]
            if found:
                if not stream:
                    return _line(found[0])
                # etcd's trap: a stream started inside history sends one event, then nothing.
                request.write(_line(found[0]))
                watch.since = 2**63
        self.watches.append(watch)
        request.notifyFinish().addBoth(lambda _: self._close(watch))
        # etcd flushes a watch's headers at once, long-polls included.
        request.write(b"")
        return NOT_DONE_YET

    def _matches(self, watch: Watch, event: Event) -> bool:
        key = event["node"]["key"]
        if event["node"]["modifiedIndex"] < watch.since:
            return False
        if key == watch.key or (watch.recursive and key.startswith(watch.key.rstrip("/") + "/")):
            return True
        return event["action"] == "delete" and watch.key.startswith(key + "/")

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

    def _error(self, code: int, message: str, cause: str) -> dict[str, Any]:
        return {"errorCode": code, "message": message, "cause": cause, "index": self.index}


def _line(event: Event) -> bytes:
    return json.dumps(event).encode() + b"\n"


def _json(body: object) -> bytes:
    return json.dumps(body).encode() + b"\n"


def cut_every(size: int) -> Callable[[bytes], list[bytes]]:
    """
    A :attr:`EtcdResource.chunks` cutting data into pieces of ``size`` bytes.
    """
    return lambda data: [data[i : i + size] for i in range(0, len(data), size)]
