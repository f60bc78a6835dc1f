"""
A member's answer as a record, etcd's headers picked out of it, and the error an answer carries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.web.http_headers import Headers

from txetcd2._wire.direct import direct_constructor
from txetcd2._wire.errors import (
    EtcdError,
    EtcdProtocolError,
    EtcdV2Disabled,
    admin_error,
    api_error,
)
from txetcd2._wire.tls_errors import plain_http_to_tls

#: The headers etcd sets, kept (lower-case) on every answer.
ETCD_HEADERS = (
    "x-etcd-index",
    "x-raft-index",
    "x-raft-term",
    "x-etcd-cluster-id",
    "content-type",
    "location",
)


@attrs.frozen
class RawResponse:
    """
    A complete answer from one member.

    :ivar endpoint: the member's base URL.
    :ivar status: the HTTP status.
    :ivar headers: etcd's headers, by lower-case name.
    :ivar body: the raw body.
    """

    endpoint: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """
        Decode the body as JSON.

        :returns: the decoded document.
        :raises EtcdProtocolError: when it is not JSON.
        """
        try:
            return json.loads(self.body)
        except ValueError:
            raise EtcdProtocolError(
                self.endpoint, self.status, "the body is not JSON", self.body
            ) from None


#: :class:`RawResponse` as the transport builds one per answer (see
#: :mod:`txetcd2._wire.direct`).
make_raw_response = direct_constructor(RawResponse)


#: etcd's headers by their bytes name: as :class:`Headers` spells it
#: (``X-Etcd-Index``), and in lower case.
_WANTED = {
    **{name.encode("ascii"): name for name in ETCD_HEADERS},
    **{name.title().encode("ascii"): name for name in ETCD_HEADERS},
}

#: etcd's headers as :class:`Headers` keys them (it spells every name it
#: stores the one canonical way, ``X-Etcd-Index``), with their lower-case names.
_CANONICAL = tuple((name.title().encode("ascii"), name) for name in ETCD_HEADERS)


def etcd_headers(headers: Headers) -> dict[str, str]:
    """
    Pick etcd's headers out of an answer.

    One lookup per etcd header in the table :class:`Headers` keeps (by
    canonical name), without canonicalizing any name again; when
    :class:`Headers` does not keep that table, one pass over its headers.

    :param headers: the answer's headers.
    :returns: the values (the last one when repeated), by lower-case name.
    """
    try:
        table: dict[bytes, list[bytes]] = headers._rawHeaders
    except AttributeError:  # pragma: no cover - a Twisted without the table
        return _scan_headers(headers)
    found: dict[str, str] = {}
    for raw_name, name in _CANONICAL:
        values = table.get(raw_name)
        if values:
            value = values[-1]
            found[name] = value.decode("latin-1") if type(value) is bytes else str(value)
    return found


def _scan_headers(headers: Headers) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw_name, values in headers.getAllRawHeaders():
        name = _WANTED.get(raw_name)
        if name is None and not raw_name.istitle():
            name = _WANTED.get(raw_name.lower())
        if name is not None and values:
            value = values[-1]
            found[name] = value.decode("latin-1") if isinstance(value, bytes) else value
    return found


def error_for(raw: RawResponse) -> EtcdError:
    """
    Build the exception for an answer that is not a success.

    :param raw: the answer.
    :returns: the exception to raise.
    """
    content_type = raw.headers.get("content-type", "")
    tls_error = plain_http_to_tls(raw.endpoint, raw.status, raw.body)
    if tls_error is not None:
        return tls_error
    if raw.status == 404 and content_type.startswith("text/plain"):
        return EtcdV2Disabled(raw.endpoint)
    if content_type.startswith("application/json"):
        try:
            doc = json.loads(raw.body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("errorCode"), int):
            index = doc.get("index")
            return api_error(
                doc["errorCode"],
                str(doc.get("message", "")),
                doc.get("cause") if isinstance(doc.get("cause"), str) else None,
                index if isinstance(index, int) else 0,
                raw.status,
            )
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return admin_error(raw.status, doc["message"], raw.endpoint)
    if raw.status in (301, 302, 307, 308):
        return EtcdProtocolError(
            raw.endpoint,
            raw.status,
            "etcd redirected the request; redirects are never followed for keys because "
            "they lead outside the intended prefix",
            raw.body,
        )
    return EtcdProtocolError(raw.endpoint, raw.status, "not an etcd answer", raw.body)
