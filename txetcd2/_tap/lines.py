"""
One line of text per watch event, for the ``etcd-watch`` service: JSON lines or plain text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from txetcd2._wire.models import EtcdResponse

#: A formatter turns an event into one line (without the newline).
Formatter = Callable[[EtcdResponse], str]


def event_fields(event: EtcdResponse) -> dict[str, Any]:
    """
    The fields of one event, as written on a JSON line.

    :param event: a watch event.
    :returns: ``action``, ``key``, ``value``, ``dir``, ``ttl``, ``created_index``,
        ``modified_index``, ``prev_value`` and ``prev_modified_index`` (None when absent).
    """
    node = event.node
    prev = event.prev_node
    return {
        "action": event.action,
        "key": node.key,
        "value": node.value,
        "dir": node.dir,
        "ttl": node.ttl,
        "created_index": node.created_index,
        "modified_index": node.modified_index,
        "prev_value": prev.value if prev is not None else None,
        "prev_modified_index": prev.modified_index if prev is not None else None,
    }


def json_line(event: EtcdResponse) -> str:
    """
    Format an event as one JSON object (see :func:`event_fields`).

    :param event: a watch event.
    :returns: the line, without a newline.
    """
    return json.dumps(event_fields(event), ensure_ascii=False, separators=(", ", ": "))


def _show(value: str | None) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def text_line(event: EtcdResponse) -> str:
    """
    Format an event for people: ``[index] action key = value (was previous)``.

    :param event: a watch event.
    :returns: the line, without a newline.
    """
    node = event.node
    text = f"[{node.modified_index}] {event.action} {node.key}"
    if node.dir:
        text += "/"
    elif node.value is not None:
        text += f" = {_show(node.value)}"
    if node.ttl is not None:
        text += f" (ttl {node.ttl}s)"
    if event.prev_node is not None and not event.prev_node.dir:
        text += f" (was {_show(event.prev_node.value)})"
    return text


def resync_line(snapshot: EtcdResponse, formatter: Formatter) -> str:
    """
    Format the snapshot a watcher read after it lost etcd's event history.

    Changes between the last event and the snapshot are not reported one by one, so a reader
    of the lines must take the snapshot as the new state of the whole watched tree.

    :param snapshot: the recursive read of the watched key.
    :param formatter: :func:`json_line` or :func:`text_line`, choosing the output style.
    :returns: the line, without a newline.
    """
    leaves = snapshot.node.leaves()
    if formatter is text_line:
        return (
            f"[{snapshot.etcd_index}] resync {snapshot.node.key}: {len(leaves)} keys "
            "(events were lost; this is the current state)"
        )
    document = {
        "action": "resync",
        "key": snapshot.node.key,
        "etcd_index": snapshot.etcd_index,
        "values": leaves,
    }
    return json.dumps(document, ensure_ascii=False, separators=(", ", ": "))


FORMATTERS: dict[str, Formatter] = {"json": json_line, "text": text_line}
