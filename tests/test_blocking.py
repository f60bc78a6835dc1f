"""
Unit tests for the blocking facade's checks (the calls themselves are tested against real etcd
in tests/integration/test_blocking.py, in a process of their own).
"""

from __future__ import annotations

from twisted.python import threadable
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import EtcdError, blocking
from txetcd2._blocking import BlockingEtcdClient, ReactorThreadError


class BlockingChecksTests(SynchronousTestCase):
    """
    Mistakes are reported before crochet starts a reactor thread.
    """

    def test_exports(self) -> None:
        """txetcd2.blocking exports the client and its error."""
        self.assertEqual(sorted(blocking.__all__), ["BlockingEtcdClient", "ReactorThreadError"])
        self.assertIs(blocking.BlockingEtcdClient, BlockingEtcdClient)

    def test_reactor_thread(self) -> None:
        """Building a client in the reactor thread raises a clear ReactorThreadError."""
        self.patch(threadable, "isInIOThread", lambda: True)
        error = self.assertRaises(ReactorThreadError, BlockingEtcdClient, "http://a:2379")
        self.assertIsInstance(error, EtcdError)
        self.assertIsInstance(error, RuntimeError)
        self.assertIn("use txetcd2.EtcdClient", str(error))

    def test_bad_deadline(self) -> None:
        """A deadline that is not positive is a ValueError."""
        self.patch(threadable, "isInIOThread", lambda: False)
        self.assertRaises(ValueError, BlockingEtcdClient, "http://a:2379", deadline=0)
