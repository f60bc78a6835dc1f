"""
Validation and encoding of keys, values and parameters, before any I/O.

etcd silently rewrites keys it does not like (a raw ``?`` starts the query,
``.``/``..``/``//`` are redirected outside the intended prefix, non-UTF-8
bytes become U+FFFD), so everything is checked and percent-encoded here.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

#: etcd resets the connection when a request line reaches this many bytes.
MAX_REQUEST_LINE = 4096

#: From this TTL on, etcd's int64 nanosecond arithmetic overflows and the key
#: silently never expires.
MAX_TTL = 7428128579 - 1

#: Query strings of a request, as ordered pairs.
Query = list[tuple[str, str]]


def normalize_key(key: str) -> str:
    """
    Turn a key into its canonical absolute form.

    ``"a/b"``, ``"/a/b"`` and ``"/a/b/"`` are the same key, ``"/a/b"``.
    ``""`` and ``"/"`` are the root.

    :param key: the key as the user wrote it.
    :returns: the absolute key.
    :raises TypeError: if the key is not a ``str``.
    :raises ValueError: for a segment etcd would rewrite (``.``, ``..``, an
        empty segment), a NUL, or text that is not encodable as UTF-8.
    """
    if not isinstance(key, str):
        raise TypeError(f"a key must be a str, not {type(key).__name__}")
    if "\x00" in key:
        raise ValueError(f"key {key!r} contains a NUL character, which etcd cannot route")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"key {key!r} is not valid Unicode text (lone surrogate); etcd would "
            "store a different key"
        ) from e
    if key.strip("/") == "":
        return "/"
    inner = key.removeprefix("/").removesuffix("/")
    for segment in inner.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(
                f"key {key!r} has a segment {segment!r}: etcd redirects such paths "
                "to a different key; remove empty, '.' and '..' segments"
            )
    return "/" + inner


def hidden_below(top: str, key: str) -> bool:
    """
    Whether etcd hides ``key`` from a recursive watch (or listing) of ``top``:
    a segment of ``key`` below ``top`` starts with ``_`` (etcd's ``isHidden``).
    ``top`` itself, and keys above it (a removed ancestor directory), are not
    hidden from it.

    :param top: the watched key, canonical.
    :param key: an event's key, canonical.
    :returns: whether ``key`` is hidden from ``top``.
    """
    if len(top) > len(key):
        return False
    return "/_" in "/" + key[len(top) :]


def key_path(key: str, prefix: str = "/v2/keys") -> str:
    """
    Build the percent-encoded request path of a key.

    :param key: a key (normalized here).
    :param prefix: the API path the key lives under.
    :returns: the path, e.g. ``/v2/keys/a%20b/c``.
    """
    return canonical_path(normalize_key(key), prefix)


#: A canonical key that percent-encoding leaves as it is.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~/-]+")


def canonical_path(canonical: str, prefix: str = "/v2/keys") -> str:
    """
    Build the percent-encoded request path of a key already normalized.

    :param canonical: the key, as :func:`normalize_key` returns it.
    :param prefix: the API path the key lives under.
    :returns: the path, e.g. ``/v2/keys/a%20b/c``.
    """
    if canonical == "/":
        return prefix + "/"
    if _UNRESERVED.fullmatch(canonical):  # the usual case: nothing to encode
        return prefix + canonical
    return prefix + "".join("/" + quote(seg, safe="") for seg in canonical[1:].split("/"))


#: A key that is canonical as it is (with or without its leading ``/``) and
#: that percent-encoding leaves unchanged: unreserved characters only, no
#: empty segment, no segment starting with ``.`` (so no ``.`` or ``..``).
_PLAIN_KEY = re.compile(r"/?[A-Za-z0-9_~-][A-Za-z0-9_.~-]*(?:/[A-Za-z0-9_~-][A-Za-z0-9_.~-]*)*")


def key_target(key: str, prefix: str = "/v2/keys") -> tuple[str, str]:
    """
    Normalize a key and build its percent-encoded path in one step, the
    same as :func:`normalize_key` then :func:`canonical_path`, with a
    shortcut for the usual plain keys.

    :param key: the key as the user wrote it.
    :param prefix: the API path the key lives under.
    :returns: the canonical key and its path.
    :raises TypeError: if the key is not a ``str``.
    :raises ValueError: as :func:`normalize_key`.
    """
    if type(key) is str and _PLAIN_KEY.fullmatch(key):
        canonical = key if key[0] == "/" else "/" + key
        return canonical, prefix + canonical
    canonical = normalize_key(key)
    return canonical, canonical_path(canonical, prefix)


def check_request_line(method: str, path: str, query: Query) -> str:
    """
    Build the path and query, and make sure etcd will accept the request line.

    :param method: the HTTP method.
    :param path: the encoded path.
    :param query: the query parameters.
    :returns: the path with its query string.
    :raises ValueError: when the request line would reach etcd's limit.
    """
    target = f"{path}?{urlencode(query)}" if query else path
    if len(method) + len(target) + 10 >= MAX_REQUEST_LINE:  # + " HTTP/1.1" and a space
        raise ValueError(
            f"the request for this key and its parameters is {len(target)} bytes long; "
            f"etcd resets requests whose request line reaches {MAX_REQUEST_LINE} bytes. "
            "Use a shorter key or prev_value"
        )
    return target


def check_value(value: str, what: str = "value") -> str:
    """
    Check that a value is text etcd can store unchanged.

    :param value: the value.
    :param what: the parameter's name, for the message.
    :returns: the value.
    :raises TypeError: if it is not a ``str``.
    :raises ValueError: if it cannot be encoded as UTF-8.
    """
    if not isinstance(value, str):
        raise TypeError(
            f"{what} must be a str, not {type(value).__name__}; etcd stores text "
            "(encode other data, e.g. as JSON, first)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{what} is not valid Unicode text (lone surrogate); etcd would replace it"
        ) from e
    return value


def check_int(value: int, what: str, minimum: int, maximum: int | None = None) -> int:
    """
    Check an integer parameter.

    :param value: the value.
    :param what: the parameter's name, for the message.
    :param minimum: the smallest allowed value.
    :param maximum: the largest allowed value, if any.
    :returns: the value.
    :raises TypeError: if it is not an ``int`` (``bool`` is refused too).
    :raises ValueError: if it is out of range.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise ValueError(f"{what} must be at least {minimum}{bound}, not {value}")
    return value


def check_seconds(seconds: float | None, what: str = "timeout") -> float | None:
    """
    Check a duration in seconds (a timeout, an interval).

    :param seconds: the duration; ``None`` passes through (no limit).
    :param what: the parameter's name, for the message.
    :returns: the duration as a ``float``, or ``None``.
    :raises TypeError: if it is not a number (``bool`` is refused too).
    :raises ValueError: if it is not more than 0.
    """
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if not seconds > 0:
        raise ValueError(f"{what} must be more than 0 seconds, not {seconds!r}")
    return float(seconds)


def check_duration(seconds: float, what: str) -> float:
    """
    Check a duration in seconds that must be given (``None`` is refused).

    :param seconds: the duration.
    :param what: the parameter's name, for the message.
    :returns: the duration as a ``float``.
    :raises TypeError: if it is not a number.
    :raises ValueError: if it is not more than 0.
    """
    checked = check_seconds(seconds, what)
    if checked is None:
        raise TypeError(f"{what} must be a number of seconds, not None")
    return checked


def check_ttl(ttl: int) -> int:
    """
    Check a TTL in seconds.

    :param ttl: the TTL; 0 expires the key at once.
    :returns: the TTL.
    :raises ValueError: if it is negative or so large etcd would ignore it.
    """
    return check_int(ttl, "ttl", 0, MAX_TTL)


def check_index(index: int, what: str) -> int:
    """
    Check an etcd index (``prev_index``, watch ``index``).

    :param index: the index; etcd indexes start at 1 (0 means "no check").
    :param what: the parameter's name, for the message.
    :returns: the index.
    """
    return check_int(index, what, 1)


def check_prev_value(prev_value: str) -> str:
    """
    Check a compare-and-swap/delete previous value.

    :param prev_value: the value the key must have.
    :returns: the value.
    :raises ValueError: for ``""``, which etcd cannot compare against.
    """
    check_value(prev_value, "prev_value")
    if prev_value == "":
        raise ValueError(
            "prev_value cannot be empty: etcd rejects an empty comparison "
            "(errorCode 201); compare on prev_index instead"
        )
    return prev_value


def flag(value: bool, what: str = "flag") -> str:
    """
    Spell a boolean the way etcd wants it.

    :param value: the boolean.
    :param what: the parameter's name, for the message.
    :returns: ``"true"`` or ``"false"``.
    :raises TypeError: if it is not a ``bool``.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, not {value!r}")
    return "true" if value else "false"
