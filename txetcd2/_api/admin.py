"""
The rest of etcd's v2 API: members, leader, statistics, health, version,
machines, and raw requests.

Each public function checks its arguments at once (raising
:class:`TypeError`/:class:`ValueError` before any I/O) and returns a
coroutine that :class:`~txetcd2.EtcdClient` runs; they go through the
client's cluster (failover), exchange (agent, TLS, timeouts) and v2 checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from hyperlink import URL
from twisted.web.http_headers import Headers

from txetcd2._session.disabled import check_enabled
from txetcd2._session.members import Cluster
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

if TYPE_CHECKING:
    from txetcd2._client import EtcdClient

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


def _headers(content_type: str | None) -> Headers:
    headers = Headers()
    if content_type is not None:
        headers.setRawHeaders(b"content-type", [content_type.encode("ascii")])
    return headers


async def send(
    client: EtcdClient,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    idempotent: bool,
    what: str,
    cluster: Cluster | None = None,
    check_v2: bool = True,
) -> RawResponse:
    """
    Send one request through the client's cluster and read the whole answer.

    :param client: the client.
    :param method: the HTTP method.
    :param target: the encoded path and query.
    :param body: the body, if any.
    :param content_type: the body's type (default: a form).
    :param idempotent: whether the request may be sent again to another member.
    :param what: what the request is about, for messages.
    :param cluster: the members to ask (default: the client's).
    :param check_v2: raise :class:`EtcdV2Disabled` for Go's plain 404 on ``/v2``.
    :returns: the answer, whatever its status.
    """
    exchange = client._exchange
    timeout = client._timeout
    headers = _headers(content_type)

    async def attempt(endpoint: str) -> RawResponse:
        raw = await exchange.send(endpoint, method, target, body, timeout, headers)
        if check_v2:
            await check_enabled(exchange, raw, target, timeout)
        return raw

    return await (cluster or client._cluster).call(
        attempt, idempotent=idempotent, what=method, key=what
    )


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


# -- members ------------------------------------------------------------------


def members(client: EtcdClient) -> Coro:
    """
    List the cluster's members.

    :param client: the client.
    :returns: a coroutine returning the list of :class:`Member`.
    """
    return _members(client)


async def _members(client: EtcdClient) -> list[Member]:
    raw = await send(client, "GET", "/v2/members", idempotent=True, what="members")
    _expect(raw, classes=_MEMBER_ERRORS)
    try:
        return decode_members(_json(raw))
    except DecodeError as e:
        raise _protocol(raw, e) from None


def leader(client: EtcdClient) -> Coro:
    """
    Find the cluster's leader.

    :param client: the client.
    :returns: a coroutine returning the leader's :class:`Member`; it raises
        :class:`NoLeader` during an election or without quorum.
    """
    return _leader(client)


async def _leader(client: EtcdClient) -> Member:
    raw = await send(client, "GET", "/v2/members/leader", idempotent=True, what="leader")
    _expect(raw, classes=_MEMBER_ERRORS)
    try:
        return decode_member(_json(raw))
    except DecodeError as e:
        raise _protocol(raw, e) from None


def add_member(client: EtcdClient, peer_urls: Sequence[str] | str) -> Coro:
    """
    Add a member to the cluster (start it afterwards, with
    ``--initial-cluster-state existing``).

    :param client: the client.
    :param peer_urls: the new member's peer URLs.
    :returns: a coroutine returning the new :class:`Member` (no name and no
        client URLs until it starts); it raises :class:`PeerURLExists` if a
        member already has one of these URLs, :class:`MemberChangeRefused`
        when etcd refuses to reconfigure now.
    :raises ValueError: for bad URLs.
    """
    body = json.dumps({"peerURLs": check_peer_urls(peer_urls)}).encode("utf-8")
    return _add_member(client, body)


async def _add_member(client: EtcdClient, body: bytes) -> Member:
    raw = await send(
        client,
        "POST",
        "/v2/members",
        body=body,
        content_type="application/json",
        idempotent=False,
        what="add member",
    )
    _expect(raw, (200, 201), _CHANGE_ERRORS)
    try:
        return decode_member(_json(raw))
    except DecodeError as e:
        raise _protocol(raw, e) from None


def remove_member(client: EtcdClient, member_id: str | Member) -> Coro:
    """
    Remove a member from the cluster.

    :param client: the client.
    :param member_id: the member's id (or the :class:`Member`).
    :returns: a coroutine returning ``None``; it raises :class:`MemberNotFound`
        or :class:`MemberRemoved`.
    """
    checked = check_member_id(member_id)
    return _change_member(client, "DELETE", checked, None, idempotent=False)


def update_member(
    client: EtcdClient, member_id: str | Member, peer_urls: Sequence[str] | str
) -> Coro:
    """
    Change a member's peer URLs.

    :param client: the client.
    :param member_id: the member's id (or the :class:`Member`).
    :param peer_urls: its new peer URLs.
    :returns: a coroutine returning ``None``; it raises :class:`MemberNotFound`,
        :class:`MemberRemoved` or :class:`PeerURLExists`.
    """
    checked = check_member_id(member_id)
    body = json.dumps({"peerURLs": check_peer_urls(peer_urls)}).encode("utf-8")
    return _change_member(client, "PUT", checked, body, idempotent=True)


async def _change_member(
    client: EtcdClient, method: str, member_id: str, body: bytes | None, *, idempotent: bool
) -> None:
    raw = await send(
        client,
        method,
        f"/v2/members/{member_id}",
        body=body,
        content_type="application/json" if body is not None else None,
        idempotent=idempotent,
        what=f"member {member_id}",
    )
    _expect(raw, (200, 204), _CHANGE_ERRORS)


# -- cluster information ----------------------------------------------------------


def version(client: EtcdClient) -> Coro:
    """
    Ask the server and cluster versions.

    :param client: the client.
    :returns: a coroutine returning a dict with ``etcdserver`` and
        ``etcdcluster`` (e.g. ``{"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}``).
    """
    return _version(client)


async def _version(client: EtcdClient) -> dict[str, str]:
    raw = _expect(await send(client, "GET", "/version", idempotent=True, what="version"))
    doc = _json(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("etcdserver"), str):
        raise _protocol(raw, ValueError("/version has no etcdserver field"))
    return {str(k): str(v) for k, v in doc.items()}


def health(client: EtcdClient) -> Coro:
    """
    Ask whether the cluster is healthy (has a leader and commits).

    :param client: the client.
    :returns: a coroutine returning ``True`` or ``False`` (a 503 answer is
        ``False``, not an error); connection failures still raise.
    """
    return _health(client)


async def _health(client: EtcdClient) -> bool:
    raw = _expect(await send(client, "GET", "/health", idempotent=True, what="health"), (200, 503))
    try:
        doc = json.loads(raw.body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("health") not in ("true", "false", True, False):
        raise _protocol(raw, ValueError("/health did not answer {'health': ...}"))
    return raw.status == 200 and doc["health"] in ("true", True)


def machines(client: EtcdClient) -> Coro:
    """
    List the client URLs of every member.

    :param client: the client.
    :returns: a coroutine returning the list of URLs.
    """
    return _machines(client)


async def _machines(client: EtcdClient) -> list[str]:
    raw = _expect(await send(client, "GET", "/v2/machines", idempotent=True, what="machines"))
    text = raw.body.decode("utf-8", "replace")
    return [url.strip() for url in text.split(",") if url.strip()]


def stats(client: EtcdClient, which: str) -> Coro:
    """
    Read one of etcd's statistics documents.

    :param client: the client.
    :param which: ``"self"`` or ``"store"`` (``"leader"`` goes through
        :func:`leader_stats`).
    :returns: a coroutine returning the decoded document.
    """
    if which not in ("self", "store"):
        raise ValueError(f"stats must be 'self' or 'store', not {which!r}")
    return _stats(client, which)


async def _stats(client: EtcdClient, which: str, cluster: Cluster | None = None) -> Any:
    raw = await send(
        client,
        "GET",
        f"/v2/stats/{which}",
        idempotent=True,
        what=f"{which} stats",
        cluster=cluster,
    )
    _expect(raw, classes={403: NotLeader} if which == "leader" else None)
    doc = _json(raw)
    if not isinstance(doc, dict):
        raise _protocol(raw, ValueError("the statistics are not a JSON object"))
    return doc


def leader_stats(client: EtcdClient) -> Coro:
    """
    Read the leader's statistics about its followers, from the leader.

    Only the leader serves them; when the member asked is a follower, the
    leader is looked up and asked directly.

    :param client: the client.
    :returns: a coroutine returning the decoded document.
    """
    return _leader_stats(client)


async def _leader_stats(client: EtcdClient) -> Any:
    try:
        return await _stats(client, "leader")
    except NotLeader as e:
        error: EtcdError = e
    # The leader may change between the two questions: ask a few times.
    for _ in range(3):
        found = await _leader(client)
        if not found.client_urls:
            raise NoLeader(503, f"the leader {found.id} has no client URLs", "")
        try:
            return await _stats(client, "leader", Cluster(found.client_urls))
        except NotLeader as e:
            error = e
    raise error


# -- raw requests -----------------------------------------------------------------


def raw(
    client: EtcdClient,
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

    :param client: the client.
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
    return _raw(client, verb, target, payload, content_type or default_type)


async def _raw(
    client: EtcdClient, method: str, target: str, body: bytes | None, content_type: str | None
) -> RawAnswer:
    answer = await send(
        client,
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
