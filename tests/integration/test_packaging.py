"""
The sdist and the wheel as ``python -m build`` makes them (the wheel from the sdist): what they
hold, their metadata, and each installed into a clean virtualenv.
"""

from __future__ import annotations

import os
import sys
import tarfile
import zipfile
from email.parser import Parser

from twisted.trial.unittest import TestCase

import txetcd2
from tests.integration._install import (
    check_plugin,
    checkout_files,
    distributions,
    make_venv,
    pip_install,
    run,
)


class DistributionTests(TestCase):
    """
    ``python -m build`` gives an sdist that holds everything its tests need, and a wheel with
    the package, the plugin and complete metadata; both install and run.
    """

    timeout = 600

    def workdir(self) -> str:
        work = os.path.abspath(str(self.mktemp()))
        os.makedirs(work)
        return work

    async def test_sdist(self) -> None:
        """The sdist holds every file of the checkout, installs, and its own tests run from it."""
        work = self.workdir()
        source, sdist, _ = await distributions(self)
        with tarfile.open(sdist) as archive:
            members = archive.getnames()
            top = f"txetcd2-{txetcd2.__version__}"
            archive.extractall(work, filter="data")
        names = {name.removeprefix(top + "/") for name in members}
        # Every file but git's own (.gitignore) is in the sdist.
        missing = {n for n in checkout_files(source) - names if not n.endswith(".gitignore")}
        self.assertEqual(missing, set())
        for expected in ("LICENSE", "NEWS.rst", "tests/integration/_processes.py",
                         "examples/README.rst", "docs/conf.py", "docs/_inventories/twisted.inv",
                         "twisted/plugins/txetcd2_plugin.py"):  # fmt: skip
            self.assertIn(expected, names)
        self.assertEqual([n for n in names if "__pycache__" in n or "dropin.cache" in n], [])

        unpacked = os.path.join(work, top)
        output = await run(
            self,
            [sys.executable, "-m", "twisted.trial", "tests.test_version", "tests.test_exports"],
            unpacked,
            "trial from the sdist",
        )
        self.assertIn("PASSED", output)

        python = await make_venv(self, os.path.join(work, "venv"))
        await pip_install(self, python, sdist)
        self.assertEqual(await check_plugin(self, python, work), txetcd2.__version__)

    async def test_wheel(self) -> None:
        """The wheel (built from the sdist) has the package, the plugin, the licence, metadata."""
        work = self.workdir()
        _, _, wheel = await distributions(self)
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            info = f"txetcd2-{txetcd2.__version__}.dist-info"
            metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        wanted = ["txetcd2/__init__.py", "txetcd2/_version.py", "txetcd2/py.typed",
                  "twisted/plugins/txetcd2_plugin.py", f"{info}/licenses/LICENSE"]  # fmt: skip
        for expected in wanted:
            self.assertIn(expected, names)
        self.assertEqual([n for n in names if n.startswith(("tests/", "docs/", "examples/"))], [])
        self.assertEqual(metadata["Name"], "txetcd2")
        self.assertEqual(metadata["Version"], txetcd2.__version__)
        self.assertEqual(metadata["License"], "MIT")
        self.assertEqual(metadata["Requires-Python"], ">=3.10")
        self.assertEqual(
            {url.split(",")[0] for url in metadata.get_all("Project-URL", [])},
            {"Source", "Issues", "Changelog"},
        )
        self.assertIn("Programming Language :: Python :: 3.10", metadata.get_all("Classifier"))

        python = await make_venv(self, os.path.join(work, "venv"))
        await pip_install(self, python, "--no-index", wheel)
        self.assertEqual(await check_plugin(self, python, work), txetcd2.__version__)
