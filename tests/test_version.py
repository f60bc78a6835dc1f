"""
Tests for the version: one source, exported as ``txetcd2.__version__`` and shown by
``twistd etcd-watch --version``.
"""

from __future__ import annotations

import contextlib
import io

from packaging.version import Version
from twisted.trial.unittest import SynchronousTestCase

import txetcd2
from twisted import copyright
from txetcd2 import _version
from txetcd2._tap.command import Options


class VersionTests(SynchronousTestCase):
    """
    ``txetcd2.__version__`` and the plugin's ``--version``.
    """

    def test_exported(self) -> None:
        """The package exports the version written in txetcd2/_version.py, a PEP 440 string."""
        self.assertIs(txetcd2.__version__, _version.__version__)
        self.assertIn("__version__", txetcd2.__all__)
        self.assertEqual(str(Version(txetcd2.__version__)), txetcd2.__version__)

    def test_plugin_version(self) -> None:
        """``etcd-watch --version`` prints txetcd2's version (and Twisted's) and exits 0."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as raised:
            Options().parseOptions(["--version"])
        self.assertEqual(raised.exception.code, 0)
        self.assertEqual(
            out.getvalue().splitlines(),
            [
                f"txetcd2 version: {txetcd2.__version__}",
                f"Twisted version: {copyright.version}",
            ],
        )
