"""
Tests for the validation and encoding of keys, values and parameters.
"""

from twisted.trial.unittest import SynchronousTestCase

from txetcd2._wire.keys import (
    MAX_TTL,
    check_index,
    check_prev_value,
    check_request_line,
    check_ttl,
    check_value,
    flag,
    hidden_below,
    key_path,
    normalize_key,
)


class NormalizeKeyTests(SynchronousTestCase):
    """
    Tests for :func:`normalize_key`.
    """

    def test_leading_and_trailing_slashes(self) -> None:
        """
        ``a/b``, ``/a/b`` and ``/a/b/`` are the same key.
        """
        self.assertEqual(
            {normalize_key("a/b"), normalize_key("/a/b"), normalize_key("/a/b/")}, {"/a/b"}
        )

    def test_root(self) -> None:
        """
        The empty key and ``/`` are the root.
        """
        self.assertEqual((normalize_key(""), normalize_key("/")), ("/", "/"))

    def test_rejected_segments(self) -> None:
        """
        Empty, ``.`` and ``..`` segments raise ValueError naming the segment.
        """
        for key in ("a//b", "a/./b", "a/../b", "..", "/./"):
            with self.assertRaises(ValueError, msg=key) as caught:
                normalize_key(key)
            self.assertIn("segment", str(caught.exception))

    def test_nul(self) -> None:
        """
        A NUL character is refused.
        """
        self.assertRaises(ValueError, normalize_key, "a\x00b")

    def test_lone_surrogate(self) -> None:
        """
        Text that is not encodable as UTF-8 is refused.
        """
        self.assertRaises(ValueError, normalize_key, "a\udc80")

    def test_not_text(self) -> None:
        """
        A key that is not a str raises TypeError.
        """
        self.assertRaises(TypeError, normalize_key, b"a")


class HiddenBelowTests(SynchronousTestCase):
    """
    Tests for :func:`hidden_below`, etcd's ``isHidden``.
    """

    def test_hidden(self) -> None:
        """A segment starting with ``_`` below the watched key hides the key, at any depth."""
        for top, key in (("/", "/_a"), ("/", "/a/_b"), ("/p", "/p/_a"), ("/p", "/p/a/_b/c")):
            self.assertTrue(hidden_below(top, key), (top, key))

    def test_not_hidden(self) -> None:
        """The watched key itself, keys above it, ``_`` segments at or above it, and
        ``_`` inside a segment hide nothing."""
        for top, key in (
            ("/p", "/p"),
            ("/_p", "/_p"),
            ("/_p", "/_p/a"),
            ("/p/a", "/p"),
            ("/p", "/p/a_b"),
            ("/", "/a"),
        ):
            self.assertFalse(hidden_below(top, key), (top, key))


class KeyPathTests(SynchronousTestCase):
    """
    Tests for :func:`key_path`.
    """

    def test_special_characters_are_encoded(self) -> None:
        """
        Spaces, ``%``, ``?``, ``#``, ``+``, ``&``, ``=`` and non-ASCII are percent-encoded.
        """
        self.assertEqual(
            key_path("/a b/%?#+&=/é"),
            "/v2/keys/a%20b/%25%3F%23%2B%26%3D/%C3%A9",
        )

    def test_root(self) -> None:
        """
        The root's path ends with a slash.
        """
        self.assertEqual(key_path("/"), "/v2/keys/")


class ParameterTests(SynchronousTestCase):
    """
    Tests for the parameter validators.
    """

    def test_request_line_limit(self) -> None:
        """
        A request line reaching 4096 bytes raises ValueError; a shorter one passes.
        """
        self.assertEqual(check_request_line("GET", "/v2/keys/a", [("x", "1")]), "/v2/keys/a?x=1")
        with self.assertRaises(ValueError) as caught:
            check_request_line("PUT", "/v2/keys/" + "a" * 4100, [])
        self.assertIn("4096", str(caught.exception))

    def test_value_type(self) -> None:
        """
        Values must be str.
        """
        self.assertRaises(TypeError, check_value, 1)
        self.assertRaises(TypeError, check_value, b"x")
        self.assertRaises(ValueError, check_value, "\ud800")
        self.assertEqual(check_value("a\x00\n"), "a\x00\n")

    def test_ttl(self) -> None:
        """
        TTLs are non-negative ints below the overflow bound; bools are refused.
        """
        self.assertEqual(check_ttl(0), 0)
        self.assertEqual(check_ttl(MAX_TTL), MAX_TTL)
        self.assertRaises(ValueError, check_ttl, -1)
        self.assertRaises(ValueError, check_ttl, MAX_TTL + 1)
        self.assertRaises(TypeError, check_ttl, True)
        self.assertRaises(TypeError, check_ttl, 1.5)

    def test_index(self) -> None:
        """
        Indexes start at 1, since etcd reads 0 as "no check".
        """
        self.assertEqual(check_index(1, "prev_index"), 1)
        self.assertRaises(ValueError, check_index, 0, "prev_index")
        self.assertRaises(TypeError, check_index, "3", "prev_index")

    def test_prev_value(self) -> None:
        """
        An empty previous value is refused, since etcd cannot compare against it.
        """
        self.assertEqual(check_prev_value("x"), "x")
        self.assertRaises(ValueError, check_prev_value, "")

    def test_flag(self) -> None:
        """
        Booleans are spelled ``true``/``false``; other types are refused.
        """
        self.assertEqual((flag(True), flag(False)), ("true", "false"))
        self.assertRaises(TypeError, flag, 1)
