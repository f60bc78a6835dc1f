"""
Typed, frozen records for etcd's v2 answers, and the one decoder that builds them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import attrs

from txetcd2._wire.direct import direct_constructor
from txetcd2._wire.times import parse_time


@attrs.frozen
class EtcdNode:
    """
    One node of etcd's key space: a key with a value, or a directory.

    :ivar key: the absolute key, e.g. ``"/a/b"`` (``"/"`` for the root).
    :ivar value: the value, ``None`` for a directory (or a delete event).
    :ivar dir: whether the node is a directory.
    :ivar ttl: seconds left to live, when the node expires.
    :ivar expiration: when the node expires (an aware datetime), if it does.
    :ivar created_index: the index that created the node (0 for the root).
    :ivar modified_index: the index that last changed the node (0 for the root).
    :ivar nodes: the children returned with a directory listing.
    """

    key: str
    value: str | None = None
    dir: bool = False
    ttl: int | None = None
    expiration: datetime | None = None
    created_index: int = 0
    modified_index: int = 0
    nodes: tuple[EtcdNode, ...] = ()

    def walk(self) -> Iterator[EtcdNode]:
        """
        Iterate over this node and every node below it, depth first.

        :returns: an iterator of nodes, this one first.
        """
        yield self
        for child in self.nodes:
            yield from child.walk()

    def leaves(self) -> dict[str, str]:
        """
        Map every non-directory key at or below this node to its value.

        :returns: a dict from key to value.
        """
        return {n.key: n.value for n in self.walk() if not n.dir and n.value is not None}


@attrs.frozen
class EtcdResponse:
    """
    One answer of the key-space API, or one watch event.

    :ivar action: etcd's action (``get``, ``set``, ``create``, ``update``,
        ``delete``, ``expire``, ``compareAndSwap``, ``compareAndDelete``).
    :ivar node: the node the action applied to.
    :ivar prev_node: the node as it was before, for changes of an existing key.
    :ivar etcd_index: the ``X-Etcd-Index`` header (for a watch: the store
        index when the watch started, not the event's index).
    :ivar raft_index: the ``X-Raft-Index`` header.
    :ivar raft_term: the ``X-Raft-Term`` header.
    :ivar cluster_id: the ``X-Etcd-Cluster-Id`` header.
    """

    action: str
    node: EtcdNode
    prev_node: EtcdNode | None = None
    etcd_index: int = 0
    raft_index: int | None = None
    raft_term: int | None = None
    cluster_id: str | None = None

    @property
    def value(self) -> str | None:
        """
        The node's value, a shortcut for ``response.node.value``.
        """
        return self.node.value

    @property
    def index(self) -> int:
        """
        The index of the change this answer reports (``node.modified_index``).
        """
        return self.node.modified_index


#: :class:`EtcdNode` and :class:`EtcdResponse` as the decoder builds them
#: (see :mod:`txetcd2._wire.direct`).
_make_node = direct_constructor(EtcdNode)
_make_response = direct_constructor(EtcdResponse)


class DecodeError(ValueError):
    """
    A document does not have the shape of an etcd answer.
    """


#: What a node without children has (JSON never decodes to a tuple).
_NO_NODES: tuple[()] = ()


def decode_node(doc: Any) -> EtcdNode:
    """
    Build an :class:`EtcdNode` from etcd's JSON node object.

    :param doc: the decoded JSON object.
    :returns: the node.
    :raises DecodeError: when the object does not have a node's shape.
    """
    # type() first: JSON gives exact dicts and strs, so isinstance() is
    # rarely needed (the hot path decodes one node per get).
    if type(doc) is not dict and not isinstance(doc, dict):
        raise DecodeError(f"a node should be an object, not {doc!r:.80}")
    get = doc.get
    value = get("value")
    if value is not None and type(value) is not str and not isinstance(value, str):
        raise DecodeError(f"value should be a string, not {value!r:.80}")
    expiration = get("expiration")
    expires = None
    if expiration is not None:
        try:
            expires = parse_time(expiration)
        except (TypeError, ValueError) as e:
            raise DecodeError(f"bad expiration {expiration!r}") from e
    ttl = get("ttl")
    if ttl is not None and type(ttl) is not int:
        raise DecodeError(f"ttl should be an integer, not {ttl!r}")
    children = get("nodes", _NO_NODES)
    if children is _NO_NODES:
        nodes: tuple[EtcdNode, ...] = ()
    elif isinstance(children, (list, tuple)):
        nodes = tuple([decode_node(child) for child in children]) if children else ()
    else:
        raise DecodeError("nodes should be a list")
    key = get("key", "/")
    if type(key) is not str and not isinstance(key, str):
        raise DecodeError(f"key should be a string, not {key!r:.80}")
    created = get("createdIndex", 0)
    if type(created) is not int:
        raise DecodeError(f"createdIndex should be an integer, not {created!r}")
    modified = get("modifiedIndex", 0)
    if type(modified) is not int:
        raise DecodeError(f"modifiedIndex should be an integer, not {modified!r}")
    return _make_node(
        key=key,
        value=value,
        dir=get("dir") is True,
        ttl=ttl,
        expiration=expires,
        created_index=created,
        modified_index=modified,
        nodes=nodes,
    )


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    """
    Read one of etcd's numeric headers: the one parser of ``X-Etcd-Index``,
    ``X-Raft-Index`` and ``X-Raft-Term``.

    :param headers: etcd's headers, by lower-case name.
    :param name: the lower-case header name.
    :returns: the value, or ``None`` when absent or not a non-negative integer.
    """
    value = headers.get(name)
    if value is None or not value.isdigit():
        return None
    return int(value)


def decode_event(
    doc: Any, headers: Mapping[str, str], key: str | None = None, index: int | None = None
) -> EtcdResponse:
    """
    Build an :class:`EtcdResponse` from a decoded JSON answer and its headers.

    :param doc: the decoded JSON object ``{"action", "node", "prevNode"?}``.
    :param headers: the answer's etcd headers, by lower-case name.
    :param key: for a write answered with ``noValueOnSuccess`` (no node): the
        key written, whose node then has only its key and, as
        ``modified_index``, the answer's ``X-Etcd-Index``.
    :param index: the ``X-Etcd-Index`` header, when the caller read it already.
    :returns: the response.
    :raises DecodeError: when the document does not have an answer's shape.
    """
    if type(doc) is not dict and not isinstance(doc, dict):
        raise DecodeError(f"an answer should be an object with an action, not {doc!r:.80}")
    get = doc.get
    action = get("action")
    if type(action) is not str and not isinstance(action, str):
        raise DecodeError(f"an answer should be an object with an action, not {doc!r:.80}")
    if index is None:
        index = header_int(headers, "x-etcd-index")
    prev = get("prevNode")
    found = get("node")
    if found is None and key is not None:
        node = _make_node(key=key, modified_index=index or 0)
    else:
        node = decode_node(found)
    return _make_response(
        action=action,
        node=node,
        prev_node=decode_node(prev) if prev is not None else None,
        etcd_index=index or 0,
        raft_index=header_int(headers, "x-raft-index"),
        raft_term=header_int(headers, "x-raft-term"),
        cluster_id=headers.get("x-etcd-cluster-id"),
    )


#: Decodes one JSON document at the start of a text (``json.loads`` without
#: its type checks and encoding detection).
_raw_decode = json.JSONDecoder().raw_decode


def decode_response(
    body: bytes, headers: Mapping[str, str], key: str | None = None, index: int | None = None
) -> EtcdResponse:
    """
    Decode the JSON body of a successful key-space answer.

    :param body: the raw body.
    :param headers: the answer's etcd headers, by lower-case name.
    :param key: see :func:`decode_event`.
    :param index: see :func:`decode_event`.
    :returns: the response.
    :raises DecodeError: when the body is not such an answer.
    """
    try:
        # etcd's body: UTF-8 JSON and a newline. Anything else (a BOM, leading
        # space, trailing bytes, other encodings) is left to json.loads.
        text = body.decode("utf-8")
        doc, end = _raw_decode(text)
        if end != len(text) and text[end:].strip(" \t\n\r"):
            raise ValueError("trailing data")
    except ValueError:
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise DecodeError(f"the body is not JSON: {e}") from e
    return decode_event(doc, headers, key, index)
