"""
Unit tests for the shortcuts of the request path: key encoding and header picking.
"""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from txetcd2._http import etcd_headers
from txetcd2._keys import canonical_path, key_path, normalize_key


def _quoted(canonical: str) -> str:
    return "/v2/keys" + "".join("/" + quote(s, safe="") for s in canonical[1:].split("/"))


class CanonicalPathTests(SynchronousTestCase):
    """
    Encoding a normalized key without quote() when nothing needs encoding.
    """

    def test_same_as_quoting(self) -> None:
        """Every key encodes exactly as quoting each segment does."""
        keys = [
            "a",
            "/a/b/c",
            "A-Z_0.9~x",
            "a b/c",
            "a?b",
            "a%2Fb",
            "ключ/значение",
            "a+b",
            "a#b",
            "x..y",
            "日本",
        ]
        for key in keys:
            canonical = normalize_key(key)
            self.assertEqual(canonical_path(canonical), _quoted(canonical), key)
            self.assertEqual(key_path(key), _quoted(canonical), key)

    def test_root_and_prefix(self) -> None:
        """The root is the prefix with a slash, and another prefix is used as given."""
        self.assertEqual(canonical_path("/"), "/v2/keys/")
        self.assertEqual(canonical_path("/a b", "/v2/other"), "/v2/other/a%20b")


class EtcdHeadersTests(SynchronousTestCase):
    """
    Picking etcd's headers out of an answer in one pass.
    """

    def test_picks_etcd_headers(self) -> None:
        """Only etcd's headers are kept, by lower-case name, the last value of each."""
        headers = Headers(
            {
                b"X-Etcd-Index": [b"4", b"7"],
                b"x-raft-term": [b"2"],
                b"Content-Type": [b"application/json"],
                b"Date": [b"today"],
                b"X-Etcd-Cluster-Id": [b"cdf818194e3a8c32"],
            }
        )
        self.assertEqual(
            etcd_headers(headers),
            {
                "x-etcd-index": "7",
                "x-raft-term": "2",
                "content-type": "application/json",
                "x-etcd-cluster-id": "cdf818194e3a8c32",
            },
        )

    def test_none(self) -> None:
        """An answer without etcd's headers gives an empty dict."""
        self.assertEqual(etcd_headers(Headers({b"Server": [b"nginx"]})), {})
