"""
The in-memory etcd of ``tests._etcd_resource`` with the writes the recipes
use: ``PUT`` (``prevExist``, ``prevValue``, ``prevIndex``, ``ttl``,
``refresh``), ``POST`` (in-order keys) and ``DELETE`` (with comparisons),
TTLs expiring on a :class:`~twisted.internet.task.Clock`, and hosts that
never answer (a black-holed member).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.web.server import NOT_DONE_YET, Request

from tests._etcd_resource import EtcdResource, Event, _json, _line


class WritableEtcd(EtcdResource):
    """
    An in-memory etcd answering the recipes' reads, writes and watches.

    :param clock: the clock TTLs expire on (the client's).
    :ivar ttls: the TTL of every key that has one.
    :ivar write_failures: canned answers ``(status, body)`` for the next writes.
    """

    def __init__(self, clock: Clock, history: int = 1000) -> None:
        super().__init__(history)
        self.clock = clock
        self.ttls: dict[str, int] = {}
        self._expiry: dict[str, IDelayedCall] = {}
        self.write_failures: list[tuple[int, dict[str, Any]]] = []
        self.watch_failures: list[tuple[int, dict[str, Any]]] = []
        #: how many next writes are applied but never answered (outcome unknown)
        self.lose_answers = 0
        #: how many next writes are neither applied nor answered
        self.drop_writes = 0

    # -- helpers for tests -----------------------------------------------------

    def keys_below(self, directory: str) -> list[str]:
        """
        The keys directly below ``directory``, in index order.
        """
        prefix = directory.rstrip("/") + "/"
        found = [k for k in self.values if k.startswith(prefix) and "/" not in k[len(prefix) :]]
        return sorted(found, key=lambda k: self.values[k][1])

    def stop_timers(self) -> None:
        """
        Cancel every pending expiry (at the end of a test).
        """
        for call in self._expiry.values():
            if call.active():
                call.cancel()
        self._expiry.clear()

    # -- the resource ----------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        method = request.method.decode()
        if method == "GET":
            wait = request.args.get(b"wait") if request.args else None
            if wait == [b"true"] and self.watch_failures:
                path = unquote(request.path.decode("ascii"))
                self.requests.append(("", path, {"wait": "true", "failed": "true"}))
                status, answer = self.watch_failures.pop(0)
                request.setHeader("content-type", "application/json")
                request.setHeader("x-etcd-index", str(self.index))
                request.setResponseCode(status)
                return _json(answer)
            rendered = self.render_GET(request)
            if wait == [b"true"] and rendered == NOT_DONE_YET and not request.finished:
                request.write(b"")  # etcd sends a long-poll's headers at once
            return rendered
        host = (request.getHeader("host") or "").lower()
        path = unquote(request.path.decode("ascii"))
        query = {k.decode(): v[0].decode() for k, v in (request.args or {}).items()}
        body = request.content.read() if request.content is not None else b""
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        self.requests.append((host, f"{method} {path}", {**query, **form}))
        if host in self.unanswered:
            return NOT_DONE_YET
        request.setHeader("content-type", "application/json")
        if self.write_failures:
            status, answer = self.write_failures.pop(0)
            request.setHeader("x-etcd-index", str(self.index))
            request.setResponseCode(status)
            return _json(answer)
        key = "/" + path[len("/v2/keys") :].strip("/")
        if self.drop_writes:
            self.drop_writes -= 1
            return NOT_DONE_YET
        try:
            status, answer = self._apply_write(method, key, {**query, **form})
        except _Refused as e:
            status, answer = e.status, self._error(e.code, e.message, key)
        if self.lose_answers:
            self.lose_answers -= 1
            return NOT_DONE_YET
        request.setHeader("x-etcd-index", str(self.index))
        request.setResponseCode(status)
        return _json(answer)

    def _apply_write(self, method: str, key: str, args: dict[str, str]) -> tuple[int, Event]:
        old = self.values.get(key)
        if method == "POST":
            key = f"{key}/{self.index + 1:020d}"
            return 201, self._store(key, args["value"], args, "create", None)
        self._check(old, args)
        if method == "DELETE":
            if old is None:
                if not any(k.startswith(key + "/") for k in self.values):
                    raise _Refused(404, 100, "Key not found")
                if args.get("recursive") != "true":
                    raise _Refused(403, 108, "Directory not empty")
                return 200, self._remove(key, "delete")
            action = "compareAndDelete" if "prevIndex" in args or "prevValue" in args else "delete"
            return 200, self._remove(key, action)
        if args.get("refresh") == "true":
            if old is None:
                raise _Refused(404, 100, "Key not found")
            return 200, self._refresh(key, int(args["ttl"]))
        if "prevIndex" in args or "prevValue" in args:
            action = "compareAndSwap"
        elif args.get("prevExist") == "false":
            action = "create"
        elif args.get("prevExist") == "true":
            action = "update"
        else:
            action = "set"
        return (201 if old is None else 200), self._store(key, args["value"], args, action, old)

    def _check(self, old: tuple[str, int, int] | None, args: dict[str, str]) -> None:
        if args.get("prevExist") == "false" and old is not None:
            raise _Refused(412, 105, "Key already exists")
        if args.get("prevExist") == "true" and old is None:
            raise _Refused(404, 100, "Key not found")
        if ("prevIndex" in args or "prevValue" in args) and old is None:
            raise _Refused(404, 100, "Key not found")
        if "prevIndex" in args and old is not None and int(args["prevIndex"]) != old[2]:
            raise _Refused(412, 101, "Compare failed")
        if "prevValue" in args and old is not None and args["prevValue"] != old[0]:
            raise _Refused(412, 101, "Compare failed")

    def _store(
        self,
        key: str,
        value: str,
        args: dict[str, str],
        action: str,
        old: tuple[str, int, int] | None,
    ) -> Event:
        self.index += 1
        created = old[1] if old is not None and action != "set" else self.index
        self.values[key] = (value, created, self.index)
        self._cancel_expiry(key)
        if "ttl" in args:
            self._expire_in(key, int(args["ttl"]))
        event: Event = {"action": action, "node": self._leaf(key)}
        if old is not None:
            event["prevNode"] = _node(key, old)
        self._publish(event)
        return event

    def _refresh(self, key: str, ttl: int) -> Event:
        self.index += 1
        value, created, modified = self.values[key]
        self.values[key] = (value, created, self.index)
        self._cancel_expiry(key)
        self._expire_in(key, ttl)
        previous = _node(key, (value, created, modified))
        return {"action": "update", "node": self._leaf(key), "prevNode": previous}

    def _remove(self, key: str, action: str) -> Event:
        old = self.values.get(key)
        self.index += 1
        for name in [k for k in self.values if k == key or k.startswith(key + "/")]:
            del self.values[name]
            self._cancel_expiry(name)
        node: dict[str, Any] = {"key": key, "modifiedIndex": self.index}
        node["createdIndex"] = old[1] if old else self.index
        event: Event = {"action": action, "node": node}
        if old is not None:
            event["prevNode"] = _node(key, old)
        self._publish(event)
        return event

    def _expire_in(self, key: str, ttl: int) -> None:
        self.ttls[key] = ttl
        self._expiry[key] = self.clock.callLater(ttl, self._expire, key)

    def _cancel_expiry(self, key: str) -> None:
        self.ttls.pop(key, None)
        call = self._expiry.pop(key, None)
        if call is not None and call.active():
            call.cancel()

    def _expire(self, key: str) -> None:
        self._expiry.pop(key, None)
        if key in self.values:
            self._remove(key, "expire")

    def _publish(self, event: Event) -> None:
        self.history.append(event)
        del self.history[: -self.history_size]
        for watch in list(self.watches):
            if not self._matches(watch, event) or watch.host in self.silent:
                continue
            if watch.stream:
                self._write(watch, _line(event))
            else:
                self._answer_poll(watch, event)

    def _answer_poll(self, watch: Any, event: Event) -> None:
        if watch.open:  # not answered already, by a change made while pumping
            super()._answer_poll(watch, event)


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _node(key: str, stored: tuple[str, int, int]) -> dict[str, Any]:
    value, created, modified = stored
    return {"key": key, "value": value, "createdIndex": created, "modifiedIndex": modified}
