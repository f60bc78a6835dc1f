"""
Tests for the docs build's cross-references (``docs/conf.py``): our objects are found under any
of their names, other projects' through the committed inventories, and a reference to nothing
fails the build.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")

#: The public modules, as docs/api/ shows them (docstrings refer to each other's objects).
FACADES = (
    "client",
    "models",
    "watch",
    "errors",
    "admin",
    "auth",
    "blocking",
    "recipes",
    "testing",
)
PAGE = "Page\n====\n\n{body}\n\n" + "".join(f".. facade:: txetcd2.{m}\n\n" for m in FACADES)


#: Good references, then broken ones, in one page: one build (about 3 s) serves every test.
BODY = (
    "Checked: :class:`txetcd2.EtcdClient`, :class:`txetcd2._client.EtcdClient`, "
    ":meth:`txetcd2.EtcdClient.get`, :class:`EtcdResponse`, "
    ":class:`twisted.internet.defer.Deferred`, :class:`treq.client.HTTPClient`, "
    ":attr:`txetcd2.testing.EtcdMember.client_url`, :class:`IReactorTime`.\n\n"
    "Broken: :class:`txetcd2.NoSuchClass` and :meth:`txetcd2.EtcdClient.no_such_method`."
)


@functools.cache
def build(body: str = BODY) -> tuple[int, str, str]:
    """
    Build a one-page project with the docs' configuration, as ``make docs`` does.

    :param body: reST put before the API reference.
    :returns: sphinx-build's exit status, its warnings, and the page's HTML (written even when
        there are warnings, thanks to ``--keep-going``).
    """
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "source")
        os.mkdir(source)
        with open(os.path.join(source, "index.rst"), "w", encoding="utf-8") as f:
            f.write(PAGE.format(body=body))
        out = os.path.join(work, "html")
        argv = [sys.executable, "-m", "sphinx", "-n", "-W", "--keep-going", "-q", "-E"]
        done = subprocess.run(
            [*argv, "-b", "html", "-c", DOCS, source, out],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=work,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        html = ""
        if os.path.exists(os.path.join(out, "index.html")):
            with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
                html = f.read()
        return done.returncode, done.stderr, html


class CrossReferenceTests(SynchronousTestCase):
    """
    What ``make docs`` accepts as a cross-reference, and what fails it.
    """

    def test_aliases_and_inventories(self) -> None:
        """Our objects resolve under any of their names, and other projects' link to their docs."""
        _, warnings, html = build()
        [paragraph] = re.findall(r"<p>Checked: .*?</p>", html, re.DOTALL)
        hrefs = re.findall(r'href="([^"]+)"', paragraph)
        self.assertEqual(
            hrefs,
            [
                "#txetcd2.client.EtcdClient",
                "#txetcd2.client.EtcdClient",
                "#txetcd2.client.EtcdClient.get",
                "#txetcd2.models.EtcdResponse",
                "https://docs.twisted.org/en/stable/api/twisted.internet.defer.Deferred.html",
                "https://treq.readthedocs.io/en/latest/api.html#treq.client.HTTPClient",
                "#txetcd2.testing.EtcdMember",
                "https://docs.twisted.org/en/stable/api/"
                "twisted.internet.interfaces.IReactorTime.html",
            ],
        )
        self.assertEqual(len(warnings.splitlines()), 2, warnings)

    def test_broken_reference_fails(self) -> None:
        """A reference to an object of ours that does not exist fails the build and is named."""
        code, warnings, _ = build()
        self.assertNotEqual(code, 0)
        [first, second] = warnings.splitlines()
        self.assertIn("reference target not found: txetcd2.NoSuchClass", first)
        self.assertIn("reference target not found: txetcd2.EtcdClient.no_such_method", second)
