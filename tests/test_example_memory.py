"""
The in-memory example test module (``examples/test_with_memory_etcd.py``) passes, run the way a
user runs it, and uses only the public API.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from twisted.trial.reporter import TestResult
from twisted.trial.runner import TestLoader
from twisted.trial.unittest import SynchronousTestCase

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "test_with_memory_etcd.py"


class MemoryExampleTests(SynchronousTestCase):
    """
    Runs the example's tests in-process.
    """

    def test_example_passes(self) -> None:
        """Every test of the example module passes."""
        spec = importlib.util.spec_from_file_location("test_with_memory_etcd", EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result = TestResult()
        TestLoader().loadModule(module).run(result)
        problems = [str(f) for _, f in result.errors + result.failures]
        self.assertEqual(problems, [])
        self.assertEqual(result.testsRun, 4)
        self.assertTrue(result.wasSuccessful())

    def test_public_api_only(self) -> None:
        """The example imports nothing private from txetcd2."""
        tree = ast.parse(EXAMPLE.read_text())
        modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        ours = [m for m in modules if m.startswith("txetcd2")]
        self.assertEqual(sorted(set(ours)), ["txetcd2", "txetcd2.testing"])
