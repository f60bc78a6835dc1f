"""
etcd's timestamps: RFC 3339 with up to nine fractional digits (Go's ``RFC3339Nano``, trailing
zeros dropped) and ``Z`` or an offset, e.g. ``2026-11-21T07:26:25.743964123Z``.
"""

from __future__ import annotations

import re
from datetime import datetime

_RFC3339 = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)",
    re.ASCII,
)


def parse_time(text: str) -> datetime:
    """
    An aware :class:`~datetime.datetime` from one of etcd's timestamps, to the microsecond
    (further digits are dropped, as ``datetime.fromisoformat`` does from Python 3.11 on; this
    also runs on 3.10, whose ``fromisoformat`` takes neither ``Z`` nor nine digits).

    :param text: the timestamp.
    :returns: the time, with its offset.
    :raises ValueError: when ``text`` is not such a timestamp.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    fraction = match["fraction"]
    micro = f".{fraction[:6].ljust(6, '0')}" if fraction else ""
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    return datetime.fromisoformat(match["time"] + micro + zone)
