"""
A writer in a process of its own, so that a slow consumer in the test's reactor does not slow it.

``python -m tests.integration._writer URL KEY COUNT PARALLEL SIZE`` sets ``KEY`` ``COUNT``
times to a value of ``SIZE`` bytes, ``PARALLEL`` requests in flight (one keep-alive connection
per thread), then prints one JSON line: ``{"indexes": [...], "ended": <time.time()>}``.
Only for loopback etcd members started by the tests.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

_local = threading.local()


def _connection(netloc: str) -> http.client.HTTPConnection:
    connection: http.client.HTTPConnection | None = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = http.client.HTTPConnection(netloc, timeout=30)
    return connection


def _set(netloc: str, path: str, body: bytes) -> int:
    connection = _connection(netloc)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    connection.request("PUT", path, body=body, headers=headers)
    answer = connection.getresponse()
    document = json.loads(answer.read())
    if answer.status not in (200, 201):
        raise RuntimeError(f"write failed: {answer.status} {document}")
    return int(document["node"]["modifiedIndex"])


def main(argv: list[str]) -> None:
    url, key, count, parallel, size = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise SystemExit("the writer only writes to 127.0.0.1")
    body = b"value=" + b"x" * size
    path = "/v2/keys" + key
    with ThreadPoolExecutor(parallel) as pool:
        indexes = list(pool.map(lambda _: _set(parts.netloc, path, body), range(count)))
    print(json.dumps({"indexes": sorted(indexes), "ended": time.time()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
