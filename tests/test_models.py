"""
Tests for the decoding of etcd's answers into models.
"""

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txetcd2._wire.models import DecodeError, EtcdNode, decode_response

HEADERS = {
    "x-etcd-index": "12",
    "x-raft-index": "40",
    "x-raft-term": "3",
    "x-etcd-cluster-id": "cdf818194e3a8c32",
}


class DecodeTests(SynchronousTestCase):
    """
    Tests for :func:`decode_response`.
    """

    def test_full_answer(self) -> None:
        """
        Every field of a set answer with a previous node maps to a snake_case field.
        """
        body = {
            "action": "set",
            "node": {
                "key": "/a",
                "value": "2",
                "ttl": 5,
                "expiration": "2026-11-21T07:26:25.743964123Z",
                "createdIndex": 12,
                "modifiedIndex": 12,
            },
            "prevNode": {"key": "/a", "value": "1", "createdIndex": 7, "modifiedIndex": 9},
        }
        response = decode_response(json.dumps(body).encode(), HEADERS)
        self.assertEqual(response.action, "set")
        self.assertEqual(response.value, "2")
        self.assertEqual(response.index, 12)
        self.assertEqual(response.node.ttl, 5)
        self.assertEqual(
            response.node.expiration,
            datetime(2026, 11, 21, 7, 26, 25, 743964, tzinfo=timezone.utc),
        )
        self.assertEqual(response.prev_node, EtcdNode("/a", "1", False, None, None, 7, 9))
        self.assertEqual(
            (response.etcd_index, response.raft_index, response.raft_term, response.cluster_id),
            (12, 40, 3, "cdf818194e3a8c32"),
        )

    def test_expiration_with_offset(self) -> None:
        """
        Expirations with a numeric offset are aware datetimes.
        """
        body = {
            "action": "get",
            "node": {
                "key": "/a",
                "value": "",
                "expiration": "2013-12-04T12:01:21.874888581-08:00",
                "createdIndex": 1,
                "modifiedIndex": 1,
            },
        }
        node = decode_response(json.dumps(body).encode(), {}).node
        assert node.expiration is not None
        self.assertEqual(node.expiration.utcoffset(), timedelta(hours=-8))

    def test_root_listing(self) -> None:
        """
        The root listing has no key or indexes: it becomes ``/`` with index 0,
        and its children are a tuple walked depth first.
        """
        body = {
            "action": "get",
            "node": {
                "dir": True,
                "nodes": [
                    {
                        "key": "/d",
                        "dir": True,
                        "createdIndex": 3,
                        "modifiedIndex": 3,
                        "nodes": [
                            {"key": "/d/x", "value": "1", "createdIndex": 4, "modifiedIndex": 4}
                        ],
                    },
                    {"key": "/y", "value": "2", "createdIndex": 5, "modifiedIndex": 5},
                ],
            },
        }
        node = decode_response(json.dumps(body).encode(), {}).node
        self.assertEqual((node.key, node.dir, node.created_index), ("/", True, 0))
        self.assertIsInstance(node.nodes, tuple)
        self.assertEqual([n.key for n in node.walk()], ["/", "/d", "/d/x", "/y"])
        self.assertEqual(node.leaves(), {"/d/x": "1", "/y": "2"})

    def test_not_json(self) -> None:
        """
        A body that is not JSON raises DecodeError.
        """
        self.assertRaises(DecodeError, decode_response, b"<html>", {})

    def test_wrong_shapes(self) -> None:
        """
        Documents that are not etcd answers raise DecodeError.
        """
        docs: list[Any] = [
            [],
            {"node": {}},
            {"action": "get", "node": []},
            {"action": "get", "node": {"key": "/a", "value": 3}},
            {"action": "get", "node": {"key": "/a", "modifiedIndex": "3"}},
            {"action": "get", "node": {"key": "/a", "ttl": "3"}},
            {"action": "get", "node": {"key": "/a", "expiration": "soon"}},
            {"action": "get", "node": {"key": "/a", "nodes": {}}},
        ]
        for doc in docs:
            self.assertRaises(DecodeError, decode_response, json.dumps(doc).encode(), {})

    def test_frozen(self) -> None:
        """
        Models cannot be changed.
        """
        node = EtcdNode("/a")
        with self.assertRaises(AttributeError):
            node.value = "x"  # type: ignore[misc]
