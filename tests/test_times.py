"""
Tests for the parsing of etcd's timestamps (RFC 3339, nanoseconds, ``Z``), which must give the
same times on Python 3.10 as ``datetime.fromisoformat`` does from 3.11 on.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted.trial.unittest import SynchronousTestCase

from txetcd2._wire.times import parse_time


class ParseTimeTests(SynchronousTestCase):
    """
    ``parse_time`` reads the timestamps etcd writes.
    """

    def test_nanoseconds_and_z(self) -> None:
        """Nine fractional digits are cut to microseconds and ``Z`` is UTC."""
        self.assertEqual(
            parse_time("2026-11-21T07:26:25.743964123Z"),
            datetime(2026, 11, 21, 7, 26, 25, 743964, tzinfo=timezone.utc),
        )

    def test_short_fraction_and_offset(self) -> None:
        """Go drops trailing zeros (``.5``), and an offset is kept."""
        parsed = parse_time("2013-12-04T12:01:21.5-08:00")
        self.assertEqual(parsed.microsecond, 500000)
        self.assertEqual(parsed.utcoffset(), timedelta(hours=-8))

    def test_no_fraction(self) -> None:
        """A whole second has no fraction at all."""
        self.assertEqual(
            parse_time("2026-01-02T03:04:05Z"),
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        )

    def test_not_a_timestamp(self) -> None:
        """Anything else, e.g. a time without a zone, is a ValueError naming the text."""
        for text in (
            "soon",
            "2026-01-02T03:04:05",
            "2026-01-02 03:04:05Z",
            "٢٠٢٦-01-02T03:04:05Z",
        ):
            with self.assertRaises(ValueError) as raised:
                parse_time(text)
            self.assertIn(repr(text), str(raised.exception))
