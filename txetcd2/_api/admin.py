"""
The rest of etcd's v2 API: members, leader, statistics, health, version,
machines, and raw requests.

Each public function checks its arguments at once (raising
:class:`TypeError`/:class:`ValueError` before any I/O) and returns a
coroutine that :class:`~txetcd2.EtcdClient` runs; they go through the
session (failover, cluster-ID checks, deadlines and v2 checks).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from hyperlink import URL
from twisted.web.http_headers import Headers

from txetcd2._session.session import Request, Session
from txetcd2._wire.admin_models import (
    Member,
    RawAnswer,
    decode_body,
    decode_member,
    decode_members,
)
from txetcd2._wire.answers import RawResponse, error_for
from txetcd2._wire.errors import (
    EtcdAdminError,
    EtcdError,
    EtcdProtocolError,
    MemberChangeRefused,
    MemberNotFound,
    MemberRemoved,
    NoLeader,
    NotLeader,
    PeerURLExists,
    admin_error,
)
from txetcd2._wire.models import DecodeError

#: How a members call's statuses map to exceptions.
_MEMBER_ERRORS: Mapping[int, type[EtcdAdminError]] = {
    404: MemberNotFound,
    409: PeerURLExists,
    410: MemberRemoved,
    503: NoLeader,
}

#: The same, for the calls that change the membership.
_CHANGE_ERRORS: Mapping[int, type[EtcdAdminError]] = {**_MEMBER_ERRORS, 500: MemberChangeRefused}

_HEX_ID = re.compile(r"[0-9a-fA-F]{1,16}")
_METHOD = re.compile(r"[A-Z]{3,10}")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Printable ASCII without space: an already-encoded path.
_PATH_CHARS = re.compile(r"[\x21-\x7e]*")

Coro = Coroutine[Any, Any, Any]
_R = TypeVar("_R")


# -- checking arguments ------------------------------------------------------


def check_member_id(member_id: object) -> str:
    """
    Check a member id.

    :param member_id: the id, in hexadecimal as :attr:`Member.id` has it
        (a :class:`Member` is accepted too).
    :returns: the id, in lower case.
    :raises TypeError: when it is not a ``str`` or :class:`Member`.
    :raises ValueError: when it is not 1 to 16 hexadecimal digits.
    """
    if isinstance(member_id, Member):
        member_id = member_id.id
    if not isinstance(member_id, str):
        raise TypeError(f"member_id must be a hexadecimal str, not {type(member_id).__name__}")
    if not _HEX_ID.fullmatch(member_id):
        raise ValueError(
            f"member_id {member_id!r} is not a member id; ids are up to 16 hexadecimal "
            "digits, as members() lists them"
        )
    return member_id.lower()


def check_peer_urls(peer_urls: object) -> list[str]:
    """
    Check the peer URLs of a member.

    :param peer_urls: one URL or a sequence of URLs, like
        ``["http://10.0.0.4:2380"]``.
    :returns: the URLs, as a list.
    :raises TypeError: when they are not strings.
    :raises ValueError: when there are none, or one is not an ``http``/``https``
        URL with a host and a port.
    """
    items = [peer_urls] if isinstance(peer_urls, str) else peer_urls
    if not isinstance(items, Sequence):
        raise TypeError(f"peer_urls must be a list of str URLs, not {type(peer_urls).__name__}")
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"a peer URL must be a str, not {type(item).__name__}")
        try:
            url = URL.from_text(item)
        except Exception as e:
            raise ValueError(f"peer URL {item!r} is not a URL: {e}") from None
        explicit_port = re.search(r"://[^/]*:\d+", item) is not None
        if url.scheme not in ("http", "https") or not url.host or not explicit_port:
            raise ValueError(
                f"peer URL {item!r} must be an http:// or https:// URL with a host and a "
                "port, like http://10.0.0.4:2380"
            )
        if url.path not in ((), ("",)) or url.query or url.fragment or url.userinfo:
            raise ValueError(f"peer URL {item!r} must have no path, query or credentials")
        result.append(item)
    if not result:
        raise ValueError("at least one peer URL is needed, like http://10.0.0.4:2380")
    return result


def _check_method(method: object) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, not {type(method).__name__}")
    upper = method.upper()
    if not _METHOD.fullmatch(upper):
        raise ValueError(f"method {method!r} is not an HTTP method like GET or PUT")
    return upper


def _check_path(path: object) -> str:
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    if not path.startswith("/") or not _PATH_CHARS.fullmatch(path) or "?" in path or "#" in path:
        raise ValueError(
            f"path {path!r} must start with '/' and be percent-encoded printable ASCII "
            "without '?' or '#' (pass the query as params=)"
        )
    return path


def _param(value: object, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(f"param {name!r} must be a str, int or bool, not {type(value).__name__}")


def _check_params(params: object) -> str:
    if params is None:
        return ""
    if isinstance(params, Mapping):
        pairs = list(params.items())
    elif isinstance(params, Sequence) and not isinstance(params, str | bytes):
        pairs = list(params)
    else:
        raise TypeError("params must be a mapping or a list of (name, value) pairs")
    query: list[tuple[str, str]] = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(f"params entry {pair!r} is not a (str, value) pair")
        query.append((pair[0], _param(pair[1], pair[0])))
    return urlencode(query)


def _check_body(body: object, json_body: object) -> tuple[bytes | None, str | None]:
    if body is not None and json_body is not None:
        raise ValueError("pass body= or json_body=, not both")
    if json_body is not None:
        try:
            return json.dumps(json_body).encode("utf-8"), "application/json"
        except (TypeError, ValueError) as e:
            raise ValueError(f"json_body cannot be encoded as JSON: {e}") from None
    if body is None:
        return None, None
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, str):
        return body.encode("utf-8"), None
    if isinstance(body, Mapping):
        fields = [(str(k), _param(v, str(k))) for k, v in body.items()]
        return urlencode(fields).encode("ascii"), "application/x-www-form-urlencoded"
    raise TypeError(
        f"body must be a mapping (sent as a form), bytes or str, not {type(body).__name__}"
    )


# -- sending ------------------------------------------------------------------


def _headers(content_type: str | None) -> Headers | None:
    if content_type is None:
        return None
    return Headers({b"content-type": [content_type.encode("ascii")]})


async def send(
    session: Session,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    idempotent: bool,
    what: str,
    only: Sequence[str] | None = None,
    check_v2: bool = True,
    max_retries: int | None = None,
) -> RawResponse:
    """
    Send one request through the session and read the whole answer.

    :param session: the session.
    :param method: the HTTP method.
    :param target: the encoded path and query.
    :param body: the body, if any.
    :param content_type: the body's type (default: a form).
    :param idempotent: whether the request may be sent again to another member.
    :param what: what the request is about, for messages.
    :param only: ask these members instead of the cluster's.
    :param check_v2: raise :class:`EtcdV2Disabled` for Go's plain 404 on ``/v2``.
    :param max_retries: back-offs allowed (default: the session's).
    :returns: the answer, whatever its status.
    """
    headers = _headers(content_type)
    request = Request(method, target, what, idempotent, body, headers, check_v2=check_v2)
    return await session.request(request, session.deadline(None), max_retries, only)


def _fail(raw: RawResponse, classes: Mapping[int, type[EtcdAdminError]] | None) -> EtcdError:
    error = error_for(raw)
    if type(error) is EtcdAdminError and classes:
        return admin_error(error.status, error.message, error.endpoint, classes)
    return error


def _json(raw: RawResponse) -> Any:
    return raw.json()


def _expect(
    raw: RawResponse,
    statuses: tuple[int, ...] = (200,),
    classes: Mapping[int, type[EtcdAdminError]] | None = None,
) -> RawResponse:
    if raw.status not in statuses:
        raise _fail(raw, classes)
    return raw


def _protocol(raw: RawResponse, error: Exception) -> EtcdProtocolError:
    return EtcdProtocolError(raw.endpoint, raw.status, str(error), raw.body)


def _decoded(raw: RawResponse, decoder: Callable[[Any], _R]) -> _R:
    try:
        return decoder(_json(raw))
    except DecodeError as e:
        raise _protocol(raw, e) from None


# -- members ------------------------------------------------------------------


def members(session: Session) -> Coro:
    """
    List the cluster's members.

    :param session: the session.
    :returns: a coroutine returning the list of :class:`Member`.
    """
    return _members(session)


async def _members(session: Session) -> list[Member]:
    raw = await send(session, "GET", "/v2/members", idempotent=True, what="members")
    _expect(raw, classes=_MEMBER_ERRORS)
    return _decoded(raw, decode_members)


def leader(session: Session) -> Coro:
    """
    Find the cluster's leader.

    :param session: the session.
    :returns: a coroutine returning the leader's :class:`Member`; it raises
        :class:`NoLeader` during an election or without quorum.
    """
    return _leader(session)


async def _leader(session: Session) -> Member:
    raw = await send(session, "GET", "/v2/members/leader", idempotent=True, what="leader")
    _expect(raw, classes=_MEMBER_ERRORS)
    return _decoded(raw, decode_member)


def add_member(session: Session, peer_urls: Sequence[str] | str) -> Coro:
    """
    Add a member to the cluster (start it afterwards, with
    ``--initial-cluster-state existing``).

    :param session: the session.
    :param peer_urls: the new member's peer URLs.
    :returns: a coroutine returning the new :class:`Member` (no name and no
        client URLs until it starts); it raises :class:`PeerURLExists` if a
        member already has one of these URLs, :class:`MemberChangeRefused`
        when etcd refuses to reconfigure now.
    :raises ValueError: for bad URLs.
    """
    body = json.dumps({"peerURLs": check_peer_urls(peer_urls)}).encode("utf-8")
    return _add_member(session, body)


async def _add_member(session: Session, body: bytes) -> Member:
    raw = await send(
        session,
        "POST",
        "/v2/members",
        body=body,
        content_type="application/json",
        idempotent=False,
        what="add member",
    )
    _expect(raw, (200, 201), _CHANGE_ERRORS)
    return _decoded(raw, decode_member)


def remove_member(session: Session, member_id: str | Member) -> Coro:
    """
    Remove a member from the cluster.

    :param session: the session.
    :param member_id: the member's id (or the :class:`Member`).
    :returns: a coroutine returning ``None``; it raises :class:`MemberNotFound`
        or :class:`MemberRemoved`.
    """
    checked = check_member_id(member_id)
    return _change_member(session, "DELETE", checked, None, idempotent=False)


def update_member(
    session: Session, member_id: str | Member, peer_urls: Sequence[str] | str
) -> Coro:
    """
    Change a member's peer URLs.

    :param session: the session.
    :param member_id: the member's id (or the :class:`Member`).
    :param peer_urls: its new peer URLs.
    :returns: a coroutine returning ``None``; it raises :class:`MemberNotFound`,
        :class:`MemberRemoved` or :class:`PeerURLExists`.
    """
    checked = check_member_id(member_id)
    body = json.dumps({"peerURLs": check_peer_urls(peer_urls)}).encode("utf-8")
    return _change_member(session, "PUT", checked, body, idempotent=True)


async def _change_member(
    session: Session, method: str, member_id: str, body: bytes | None, *, idempotent: bool
) -> None:
    raw = await send(
        session,
        method,
        f"/v2/members/{member_id}",
        body=body,
        content_type="application/json" if body is not None else None,
        idempotent=idempotent,
        what=f"member {member_id}",
    )
    _expect(raw, (200, 204), _CHANGE_ERRORS)


# -- cluster information ----------------------------------------------------------


def version(session: Session) -> Coro:
    """
    Ask the server and cluster versions.

    :param session: the session.
    :returns: a coroutine returning a dict with ``etcdserver`` and
        ``etcdcluster`` (e.g. ``{"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}``).
    """
    return _version(session)


async def _version(session: Session) -> dict[str, str]:
    raw = _expect(await send(session, "GET", "/version", idempotent=True, what="version"))
    doc = _json(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("etcdserver"), str):
        raise _protocol(raw, ValueError("/version has no etcdserver field"))
    return {str(k): str(v) for k, v in doc.items()}


def health(session: Session) -> Coro:
    """
    Ask whether the cluster is healthy (has a leader and commits).

    :param session: the session.
    :returns: a coroutine returning ``True`` or ``False`` (a 503 answer is
        ``False``, not an error); connection failures still raise.
    """
    return _health(session)


async def _health(session: Session) -> bool:
    raw = _expect(
        await send(session, "GET", "/health", idempotent=True, what="health"), (200, 503)
    )
    try:
        doc = json.loads(raw.body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("health") not in ("true", "false", True, False):
        raise _protocol(raw, ValueError("/health did not answer {'health': ...}"))
    return raw.status == 200 and doc["health"] in ("true", True)


def machines(session: Session) -> Coro:
    """
    List the client URLs of every member.

    :param session: the session.
    :returns: a coroutine returning the list of URLs.
    """
    return _machines(session)


async def _machines(session: Session) -> list[str]:
    raw = _expect(await send(session, "GET", "/v2/machines", idempotent=True, what="machines"))
    text = raw.body.decode("utf-8", "replace")
    return [url.strip() for url in text.split(",") if url.strip()]


def stats(session: Session, which: str) -> Coro:
    """
    Read one of etcd's statistics documents.

    :param session: the session.
    :param which: ``"self"`` or ``"store"`` (``"leader"`` goes through
        :func:`leader_stats`).
    :returns: a coroutine returning the decoded document.
    """
    if which not in ("self", "store"):
        raise ValueError(f"stats must be 'self' or 'store', not {which!r}")
    return _stats(session, which)


async def _stats(session: Session, which: str, only: Sequence[str] | None = None) -> Any:
    raw = await send(
        session,
        "GET",
        f"/v2/stats/{which}",
        idempotent=True,
        what=f"{which} stats",
        only=only,
    )
    _expect(raw, classes={403: NotLeader} if which == "leader" else None)
    doc = _json(raw)
    if not isinstance(doc, dict):
        raise _protocol(raw, ValueError("the statistics are not a JSON object"))
    return doc


def leader_stats(session: Session) -> Coro:
    """
    Read the leader's statistics about its followers, from the leader.

    Only the leader serves them; when the member asked is a follower, the
    leader is looked up and asked directly.

    :param session: the session.
    :returns: a coroutine returning the decoded document.
    """
    return _leader_stats(session)


async def _leader_stats(session: Session) -> Any:
    try:
        return await _stats(session, "leader")
    except NotLeader as e:
        error: EtcdError = e
    # The leader may change between the two questions: ask a few times.
    for _ in range(3):
        found = await _leader(session)
        if not found.client_urls:
            raise NoLeader(503, f"the leader {found.id} has no client URLs", "")
        try:
            return await _stats(session, "leader", found.client_urls)
        except NotLeader as e:
            error = e
    raise error


# -- raw requests -----------------------------------------------------------------


def raw(
    session: Session,
    method: str,
    path: str,
    params: Mapping[str, object] | Sequence[tuple[str, object]] | None = None,
    body: Mapping[str, object] | bytes | str | None = None,
    *,
    json_body: object = None,
    content_type: str | None = None,
) -> Coro:
    """
    Send any request to the cluster and return the answer as it is.

    :param session: the session.
    :param method: the HTTP method (``GET``, ``PUT``, ...).
    :param path: the percent-encoded path, e.g. ``"/v2/keys/a"``.
    :param params: the query parameters (booleans become ``true``/``false``).
    :param body: a mapping (sent as a form, as the key space expects), or
        bytes/str sent as they are (labelled as a form unless ``content_type``).
    :param json_body: a document to send as JSON instead.
    :param content_type: the body's type, overriding the default.
    :returns: a coroutine returning a :class:`RawAnswer`, whatever the status.
    """
    verb = _check_method(method)
    target = _check_path(path)
    query = _check_params(params)
    if query:
        target += "?" + query
    payload, default_type = _check_body(body, json_body)
    if content_type is not None and not isinstance(content_type, str):
        raise TypeError(f"content_type must be a str, not {type(content_type).__name__}")
    return _raw(session, verb, target, payload, content_type or default_type)


async def _raw(
    session: Session, method: str, target: str, body: bytes | None, content_type: str | None
) -> RawAnswer:
    answer = await send(
        session,
        method,
        target,
        body=body,
        content_type=content_type,
        idempotent=method in _SAFE_METHODS,
        what=target.split("?")[0],
        check_v2=False,
    )
    content_type = answer.headers.get("content-type", "")
    return RawAnswer(
        answer.endpoint,
        answer.status,
        dict(answer.headers),
        decode_body(answer.body, content_type),
        answer.body,
    )
