"""
Telling "the v2 API is switched off" apart from "not found".

etcd 3.4 and 3.5 without ``--enable-v2=true`` answer every ``/v2/*`` path
with a plain-text ``404 page not found`` (Go's default handler), while
``/version`` and ``/health`` still answer. A client must never report that
as a missing key or member.
"""

from __future__ import annotations

import json

from twisted.web.http_headers import Headers

from txetcd2._transport.exchange import Exchange
from txetcd2._wire.answers import RawResponse
from txetcd2._wire.errors import EtcdConnectionError, EtcdError, EtcdProtocolError, EtcdV2Disabled

#: What Go's default handler says for a path nobody serves.
PAGE_NOT_FOUND = b"404 page not found"


def looks_disabled(raw: RawResponse, target: str) -> bool:
    """
    Tell whether an answer to a ``/v2`` request is Go's plain-text 404.

    :param raw: the answer.
    :param target: the request's path and query.
    :returns: ``True`` when the answer is what a server without v2 sends.
    """
    return (
        target.startswith("/v2/")
        and raw.status == 404
        and raw.headers.get("content-type", "").startswith("text/plain")
        and raw.body.strip() == PAGE_NOT_FOUND
    )


async def confirm_disabled(
    exchange: Exchange,
    raw: RawResponse,
    timeout: float | None,
    headers: Headers | None = None,
) -> EtcdError:
    """
    Ask the member's ``/version`` whether it is etcd, to explain a plain 404.

    :param exchange: the exchange to ask with.
    :param raw: the plain-text 404 answer.
    :param timeout: seconds to wait for ``/version``.
    :param headers: extra request headers (credentials).
    :returns: :class:`EtcdV2Disabled` with the server's version when
        ``/version`` answers like etcd (or does not answer at all), else
        :class:`EtcdProtocolError`: the URL is not an etcd client URL.
    """
    try:
        answer = await exchange.send(raw.endpoint, "GET", "/version", None, timeout, headers)
    except EtcdConnectionError:
        return EtcdV2Disabled(raw.endpoint)
    try:
        doc = json.loads(answer.body) if answer.status == 200 else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("etcdserver"), str):
        return EtcdV2Disabled(raw.endpoint, doc["etcdserver"])
    return EtcdProtocolError(
        raw.endpoint,
        raw.status,
        "the /v2 path is not served and /version does not answer like etcd",
        raw.body,
    )


async def check_enabled(
    exchange: Exchange,
    raw: RawResponse,
    target: str,
    timeout: float | None,
    headers: Headers | None = None,
) -> RawResponse:
    """
    Pass an answer through, unless it shows that the v2 API is disabled.

    :param exchange: the exchange to confirm with.
    :param raw: the answer.
    :param target: the request's path and query.
    :param timeout: seconds to wait for ``/version``.
    :param headers: extra request headers (credentials).
    :returns: ``raw``.
    :raises EtcdV2Disabled: when the member serves no v2 API.
    :raises EtcdProtocolError: when the member is not etcd at all.
    """
    if looks_disabled(raw, target):
        raise await confirm_disabled(exchange, raw, timeout, headers)
    return raw
