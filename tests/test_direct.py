"""
Unit tests for the direct constructors of frozen records.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from txetcd2._session.session import Request, make_request
from txetcd2._wire.answers import RawResponse, make_raw_response
from txetcd2._wire.direct import direct_constructor
from txetcd2._wire.models import EtcdNode, EtcdResponse, _make_node, _make_response


class DirectConstructorTests(SynchronousTestCase):
    """
    A direct constructor builds what ``__init__`` builds, and refuses classes
    whose ``__init__`` does more than set fields.
    """

    def test_same_as_init(self) -> None:
        """Every record built directly equals the one its __init__ builds,
        positional, by name and with defaults; it stays frozen."""
        when = datetime(2026, 12, 1, tzinfo=timezone.utc)
        child = EtcdNode("/a/b", "v", False, 5, when, 3, 4)
        cases: list[tuple[type[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
            (EtcdNode, _make_node, ("/a",), {}),
            (EtcdNode, _make_node, ("/a", None, True), {"nodes": (child,)}),
            (EtcdNode, _make_node, (), {"key": "/a/b", "value": "v", "ttl": 5,
                                       "expiration": when, "created_index": 3,
                                       "modified_index": 4}),
            (EtcdResponse, _make_response, ("get", child), {}),
            (EtcdResponse, _make_response, ("set", child, child, 7, 8, 2, "id"), {}),
            (RawResponse, make_raw_response, ("http://a:1", 200, {"x-etcd-index": "7"}, b""), {}),
            (Request, make_request, ("GET", "/v2/keys/a", "/a", True), {}),
            (Request, make_request, ("PUT", "/v2/keys/a", "/a", False, b"value=v"),
             {"headers": Headers(), "keyspace": True, "check_v2": False}),
        ]  # fmt: skip
        for cls, make, args, kwargs in cases:
            direct = make(*args, **kwargs)
            self.assertIs(type(direct), cls)
            self.assertEqual(direct, cls(*args, **kwargs))
            self.assertEqual(repr(direct), repr(cls(*args, **kwargs)))
            with self.assertRaises(attrs.exceptions.FrozenInstanceError):
                direct.__setattr__(attrs.fields(cls)[0].name, None)

    def test_missing_argument(self) -> None:
        """A field without a default must be given, as with __init__."""
        self.assertRaises(TypeError, _make_node)
        self.assertRaises(TypeError, make_raw_response, "http://a:1", 200, {})

    def test_refuses_more_than_values(self) -> None:
        """Classes whose __init__ validates, converts, makes defaults, runs a
        post-init hook or resets a cached hash, and classes that are not
        slotted and frozen, are refused."""

        @attrs.frozen
        class Validated:
            x: int = attrs.field(validator=attrs.validators.instance_of(int))

        @attrs.frozen
        class Converted:
            x: int = attrs.field(converter=int)

        @attrs.frozen
        class Made:
            x: list[int] = attrs.field(factory=list)

        @attrs.frozen
        class Hooked:
            x: int

            def __attrs_post_init__(self) -> None:
                pass

        @attrs.define
        class Mutable:
            x: int

        @attrs.frozen(slots=False)
        class Unslotted:
            x: int

        @attrs.frozen(cache_hash=True)
        class Hashed:
            x: int

        class Plain:
            pass

        for cls in (Validated, Converted, Made, Hooked, Mutable, Unslotted, Hashed, Plain):
            self.assertRaises(TypeError, direct_constructor, cls)
