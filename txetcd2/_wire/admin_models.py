"""
Typed, frozen records for etcd's members and raw answers, and their decoders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from txetcd2._wire.models import DecodeError


@attrs.frozen
class Member:
    """
    One member of an etcd cluster, as ``/v2/members`` describes it.

    :ivar id: the member's id, in hexadecimal (e.g. ``"8e9e05c52164694d"``).
    :ivar name: the member's name; ``""`` for a member added but not started yet.
    :ivar peer_urls: the URLs the other members reach it at.
    :ivar client_urls: the URLs clients reach it at; empty for a member added
        but not started yet.
    """

    id: str
    name: str
    peer_urls: tuple[str, ...] = ()
    client_urls: tuple[str, ...] = ()

    @property
    def started(self) -> bool:
        """
        Whether the member has started (it has a name and client URLs).
        """
        return bool(self.name or self.client_urls)


@attrs.frozen
class RawAnswer:
    """
    One answer to :meth:`~txetcd2.EtcdClient.raw`, whatever its status.

    :ivar endpoint: the member that answered.
    :ivar status: the HTTP status.
    :ivar headers: etcd's headers (``x-etcd-index``, ``x-raft-index``,
        ``x-raft-term``, ``x-etcd-cluster-id``, ``content-type``), by lower-case name.
    :ivar body: the decoded body: the JSON document when the answer is JSON,
        else the text.
    :ivar content: the body's bytes.
    """

    endpoint: str
    status: int
    headers: Mapping[str, str]
    body: Any
    content: bytes = attrs.field(repr=False, default=b"")

    @property
    def ok(self) -> bool:
        """
        Whether the status is a success (2xx).
        """
        return 200 <= self.status < 300


def _strings(doc: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = doc.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DecodeError(f"member field {name!r} is not a list of strings: {value!r}")
    return tuple(value)


def decode_member(doc: Any) -> Member:
    """
    Build a member from etcd's ``{"id", "name", "peerURLs", "clientURLs"}``.

    :param doc: the decoded JSON object.
    :returns: the member.
    :raises DecodeError: when the document is not a member.
    """
    if not isinstance(doc, dict):
        raise DecodeError(f"a member must be a JSON object, not {doc!r}")
    member_id = doc.get("id")
    name = doc.get("name", "")
    if not isinstance(member_id, str) or not member_id:
        raise DecodeError(f"member has no id: {doc!r}")
    if not isinstance(name, str):
        raise DecodeError(f"member name is not a string: {doc!r}")
    return Member(member_id, name, _strings(doc, "peerURLs"), _strings(doc, "clientURLs"))


def decode_members(doc: Any) -> list[Member]:
    """
    Build the member list from etcd's ``{"members": [...]}``.

    :param doc: the decoded JSON object.
    :returns: the members, in etcd's order.
    :raises DecodeError: when the document is not a member list.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("members", []), list):
        raise DecodeError(f"expected {{'members': [...]}}, got {doc!r}")
    return [decode_member(item) for item in doc.get("members") or []]


def decode_body(content: bytes, content_type: str) -> Any:
    """
    Decode a body for a person: JSON when the answer says JSON, else text.

    :param content: the body's bytes.
    :param content_type: the ``Content-Type`` header.
    :returns: the JSON document, or the text (invalid UTF-8 replaced).
    """
    if content_type.split(";")[0].strip().lower() == "application/json" and content.strip():
        try:
            return json.loads(content)
        except ValueError:
            pass
    return content.decode("utf-8", "replace")
