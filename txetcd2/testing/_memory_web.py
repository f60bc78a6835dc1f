"""
The HTTP face of :class:`~txetcd2.testing.MemoryEtcd`: one ``twisted.web``
resource per member, answering like etcd's ``v2http`` handlers (key space,
watches, members, machines, stats, ``/version``, ``/health``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import attrs
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txetcd2.testing._memory_store import Event, Options, Store, StoreError

if TYPE_CHECKING:
    from txetcd2.testing._memory import MemoryEtcd
    from txetcd2.testing._memory_member import MemoryMember

_BOOLS = {"true": True, "True": True, "TRUE": True, "1": True, "t": True, "T": True}
_BOOLS.update({"false": False, "False": False, "FALSE": False, "0": False, "f": False, "F": False})
_UINT = re.compile(r"[0-9]+")
_KEYS = "/v2/keys"
_FORM = b"application/x-www-form-urlencoded"
#: etcd 3.4's wait for a commit without quorum: 5 s + 2 x a 1 s election timeout.
_RAFT_TIMEOUT = 7.0


def dumps(doc: object) -> bytes:
    """
    JSON as Go's encoder writes it: compact, UTF-8, one line.
    """
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "replace") + b"\n"


@attrs.define
class KeyRequest:
    """
    A key-space request's parameters, checked like etcd's ``parseKeyRequest``.
    """

    value: str = ""
    dir: bool = False
    recursive: bool = False
    sorted: bool = False
    wait: bool = False
    stream: bool = False
    quorum: bool = False
    no_value: bool = False
    prev_value: str = ""
    prev_index: int = 0
    wait_index: int = 0
    prev_exist: bool | None = None
    options: Options = attrs.field(factory=Options)


def _bool(form: dict[str, list[str]], name: str) -> bool:
    if name not in form:
        return False
    try:
        return _BOOLS[form[name][0]]
    except KeyError:
        raise StoreError(209, f'invalid value for "{name}"', 0) from None


def _uint(form: dict[str, list[str]], name: str, code: int) -> int:
    if name not in form:
        return 0
    text = form[name][0]
    if not _UINT.fullmatch(text) or int(text) >= 2**64:
        raise StoreError(code, f'invalid value for "{name}"', 0)
    return int(text)


def parse_key_request(form: dict[str, list[str]]) -> KeyRequest:
    """
    Check and decode a key request's merged form.

    :raises StoreError: a 2xx form error (index 0), like etcd.
    """
    request = KeyRequest(
        prev_index=_uint(form, "prevIndex", 203),
        wait_index=_uint(form, "waitIndex", 203),
        recursive=_bool(form, "recursive"),
        sorted=_bool(form, "sorted"),
        wait=_bool(form, "wait"),
        dir=_bool(form, "dir"),
        quorum=_bool(form, "quorum"),
        stream=_bool(form, "stream"),
    )
    if "prevValue" in form and form["prevValue"][0] == "":
        raise StoreError(201, '"prevValue" cannot be empty', 0)
    request.prev_value = form.get("prevValue", [""])[0]
    request.no_value = _bool(form, "noValueOnSuccess")
    request.value = form.get("value", [""])[0]
    ttl = None
    if form.get("ttl", [""])[0]:
        ttl = _uint(form, "ttl", 202)
    if "prevExist" in form:
        request.prev_exist = _bool(form, "prevExist")
    refresh = _bool(form, "refresh")
    if refresh and request.value:
        raise StoreError(211, "A value was provided on a refresh", 0)
    if refresh and ttl is None:
        raise StoreError(212, "No TTL value set", 0)
    request.options = Options(ttl, refresh)
    return request


def _form(request: Request) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    method = request.method
    content_type = (request.getHeader("content-type") or "").split(";")[0].strip()
    if method in (b"PUT", b"POST") and content_type.encode() == _FORM and request.content:
        body = request.content.read().decode("utf-8", "replace")
        for name, value in parse_qsl(body, keep_blank_values=True):
            form.setdefault(name, []).append(value)
    _, _, query = request.uri.partition(b"?")
    for name, value in parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


def _body_form(request: Request) -> dict[str, str]:
    """
    The form fields of a ``PUT`` or ``POST`` body (first value of each), for the request log.
    """
    if request.method not in (b"PUT", b"POST") or request.content is None:
        return {}
    content_type = (request.getHeader("content-type") or "").split(";")[0].strip()
    if content_type.encode() != _FORM:
        return {}
    body = request.content.read().decode("utf-8", "replace")
    request.content.seek(0)
    form: dict[str, str] = {}
    for name, value in parse_qsl(body, keep_blank_values=True):
        form.setdefault(name, value)
    return form


def _ended(request: Request) -> list[bool]:
    """
    A list that becomes non-empty once ``request`` is finished or its connection lost.
    """
    ended: list[bool] = []
    request.notifyFinish().addBoth(lambda _: ended.append(True))
    return ended


class MemberResource(Resource):
    """
    Everything one member answers.

    :param etcd: the cluster.
    :param member: this member.
    """

    isLeaf = True

    def __init__(self, etcd: MemoryEtcd, member: MemoryMember) -> None:
        super().__init__()
        self._etcd = etcd
        self._member = member

    @property
    def _store(self) -> Store:
        return self._etcd.store

    def render(self, request: Request) -> bytes | int:
        path = unquote(request.path.decode("utf-8", "replace"), errors="replace")
        _, _, raw_query = request.uri.partition(b"?")
        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query.decode("utf-8", "replace"), keep_blank_values=True):
            query.setdefault(name, value)
        record = self._etcd.record(
            self._member.url, request.method.decode(), path, query, _body_form(request)
        )
        self._member.track(request)
        state = self._member.state
        if state == "unanswering":
            return NOT_DONE_YET
        if state == "silent":
            request.write(b"")
            return NOT_DONE_YET
        request.setHeader("x-etcd-cluster-id", self._etcd.cluster_id)
        if self._member.fails(record):
            request.setHeader("content-type", "application/json")
            request.setResponseCode(self._member.failure_status)
            cause = "etcdserver: request timed out"
            return dumps(StoreError(300, cause, 0).body())
        if path.startswith("/v2/") or path == "/v2":
            if not self._etcd.enable_v2:
                return self._text(request, 404, "404 page not found")
            if path == _KEYS or path.startswith(_KEYS + "/"):
                return self._keys(request, path[len(_KEYS) :], query)
        return self._admin(request, path)

    # -- the key space ------------------------------------------------------------

    def _keys(self, request: Request, key: str, query: dict[str, str]) -> bytes | int:
        if request.method not in (b"GET", b"HEAD", b"PUT", b"POST", b"DELETE"):
            request.setHeader("allow", "GET, HEAD, POST, PUT, DELETE")
            return self._text(request, 405, "Method Not Allowed")
        lost: bool | None = None
        try:
            params = parse_key_request(_form(request))
            if params.wait and request.method == b"GET":
                return self._watch(request, key, params)
            if self._member.state == "no-quorum" and (
                request.method not in (b"GET", b"HEAD") or params.quorum
            ):
                return self._time_out(request)
            if request.method in (b"PUT", b"POST", b"DELETE"):
                lost = self._member.lost_answer()
            if lost is False:
                return NOT_DONE_YET  # dropped: neither applied nor answered
            doc, created = self._apply(request.method, key, params)
        except StoreError as e:
            if lost:
                return NOT_DONE_YET
            request.setHeader("content-type", "application/json")
            request.setHeader("x-etcd-index", str(e.index))
            request.setResponseCode(e.status)
            return dumps(e.body())
        self._etcd.count(request.method, params.quorum)
        if lost:
            return NOT_DONE_YET  # applied, never answered
        request.setHeader("content-type", "application/json")
        request.setHeader("x-etcd-index", str(self._store.index))
        self._raft_headers(request)
        if created:
            request.setResponseCode(201)
        if params.no_value and doc["action"] in ("set", "compareAndSwap", "create", "update"):
            doc = {"action": doc["action"]}
        return dumps(doc)

    def _apply(self, method: bytes, key: str, p: KeyRequest) -> tuple[dict[str, Any], bool]:
        store = self._store
        event: Event
        if method in (b"GET", b"HEAD"):
            return store.get(key, p.recursive, p.sorted), False
        if method == b"POST":
            event = store.create(key, p.value, p.dir, p.options, unique=True)
        elif method == b"DELETE":
            if p.prev_index or p.prev_value:
                event = store.compare_and_delete(key, p.prev_value, p.prev_index)
            else:
                event = store.delete(key, p.dir, p.recursive)
        elif p.prev_exist is True and not (p.prev_index or p.prev_value):
            event = store.update(key, p.value, p.options)
        elif p.prev_exist is False:
            event = store.create(key, p.value, p.dir, p.options)
        elif p.prev_index or p.prev_value:
            event = store.compare_and_swap(key, p.prev_value, p.prev_index, p.value, p.options)
        else:
            event = store.set(key, p.value, p.dir, p.options)
        created = event.action == "create" or (event.action == "set" and event.prev is None)
        return event.body(), created

    def _time_out(self, request: Request) -> int:
        """
        Answer like etcd when raft cannot commit: 500 / errorCode 300 after 7 s.
        """

        ended = _ended(request)

        def answer() -> None:
            if ended:
                return
            request.setHeader("content-type", "application/json")
            request.setHeader("x-etcd-index", "0")
            request.setResponseCode(500)
            request.write(dumps(StoreError(300, "etcdserver: request timed out", 0).body()))
            request.finish()
            self._etcd.kick()

        timer = self._etcd.clock.callLater(_RAFT_TIMEOUT, answer)
        request.notifyFinish().addBoth(lambda _: timer.cancel() if timer.active() else None)
        return NOT_DONE_YET

    def _watch(self, request: Request, key: str, p: KeyRequest) -> int:
        member = self._member
        if p.wait_index and member.history_lost():
            oldest = max(self._store.index, p.wait_index + 1)
            cause = f"the requested history has been cleared [{oldest}/{p.wait_index}]"
            raise StoreError(401, cause, self._store.index)
        member.watching(request)
        ended = _ended(request)

        def deliver(event: Event) -> None:
            if member.state != "answering" or ended:
                return
            request.write(dumps(event.body()))
            if not p.stream:
                request.finish()
            self._etcd.kick()

        found, watch, start = self._store.watch(key, p.recursive, p.stream, p.wait_index, deliver)
        request.setHeader("content-type", "application/json")
        request.setHeader("x-etcd-index", str(start))
        self._raft_headers(request)
        request.write(b"")
        if found is not None:
            request.write(dumps(found.body()))
            if not p.stream:
                request.finish()
        if watch is not None:
            registered = watch
            request.notifyFinish().addBoth(lambda _: self._store.hub.unwatch(registered))
        return NOT_DONE_YET

    def _raft_headers(self, request: Request) -> None:
        request.setHeader("x-raft-index", str(self._etcd.raft_index))
        request.setHeader("x-raft-term", str(self._etcd.raft_term))

    # -- the rest ---------------------------------------------------------------

    def _admin(self, request: Request, path: str) -> bytes:
        etcd, member = self._etcd, self._member
        route: dict[tuple[bytes, str], Callable[[], tuple[int, object]]] = {
            (b"GET", "/version"): lambda: (200, etcd.version_doc()),
            (b"GET", "/health"): lambda: member.health(),
            (b"GET", "/v2/members"): lambda: (200, {"members": etcd.members_doc()}),
            (b"GET", "/v2/members/leader"): lambda: member.leader_doc(),
            (b"GET", "/v2/stats/self"): lambda: (200, member.self_stats()),
            (b"GET", "/v2/stats/store"): lambda: (200, etcd.store_stats()),
            (b"GET", "/v2/stats/leader"): lambda: member.leader_stats(),
            (b"POST", "/v2/members"): lambda: etcd.add_member(request),
        }
        if (request.method, path) == (b"GET", "/v2/machines"):
            return self._text(request, 200, ", ".join(m.url for m in etcd.members), newline=False)
        answer = route.get((request.method, path))
        if answer is None and path.startswith("/v2/members/"):
            answer = lambda: etcd.change_member(request, path[len("/v2/members/") :])  # noqa: E731
        if answer is None:
            if request.method == b"GET" or path.startswith("/v2/"):
                return self._text(request, 404, "404 page not found")
            return self._text(request, 405, "Method Not Allowed")
        status, doc = answer()
        request.setResponseCode(status)
        if status == 204:
            return b""
        request.setHeader("content-type", "application/json")
        return dumps(doc)

    def _text(self, request: Request, status: int, text: str, newline: bool = True) -> bytes:
        request.setResponseCode(status)
        request.setHeader("content-type", "text/plain; charset=utf-8")
        return (text + ("\n" if newline else "")).encode()
