"""
Following the temporary redirects old etcd proxies send, for reads only.

etcd itself never redirects key-space requests. A ``301`` (which etcd sends
for keys with ``.``, ``..`` or ``//``) leads outside the intended prefix and
is never followed; a ``307`` from an old proxy is followed for ``GET`` only,
to the same path, a bounded number of times.
"""

from __future__ import annotations

from hyperlink import URL

from txetcd2._wire.answers import RawResponse

#: How many 307 redirects one GET follows.
MAX_REDIRECTS = 3


def redirect_target(raw: RawResponse, target: str) -> tuple[str, str] | None:
    """
    Where a ``307`` answer to a ``GET`` of ``target`` may be followed.

    :param raw: the answer.
    :param target: the encoded path and query that was requested.
    :returns: the new endpoint and target, or ``None`` when the answer is not
        a 307 or its ``Location`` leaves the requested path.
    """
    location = raw.headers.get("location")
    if raw.status != 307 or not location:
        return None
    try:
        url = URL.from_text(raw.endpoint + "/").click(location)
    except Exception:
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    new_target = url.replace(scheme="", host="", port=None).to_text()
    if not new_target.startswith("/"):
        return None
    if new_target.split("?", 1)[0] != target.split("?", 1)[0]:
        return None
    endpoint = URL(scheme=url.scheme, host=url.host, port=url.port).to_text().rstrip("/")
    return endpoint, new_target
