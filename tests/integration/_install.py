"""
Install txetcd2 the ways a user does (editable, wheel, sdist, ``make venv``) into clean
virtualenvs, quickly: the dependencies come from this interpreter's site-packages through a
``.pth`` file, so only txetcd2 itself is built and installed (pip fetches setuptools for the
isolated build from its cache or the configured index).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import sysconfig
from collections.abc import Sequence

from twisted.trial.unittest import TestCase

from tests.integration._processes import CHECKOUT, spawn, wait_ended

#: What a copy of the checkout leaves out: build output, tools' caches, virtualenvs, editors'
#: settings (none of them is in the sdist either).
IGNORED = (
    ".git",
    ".venv",
    ".venv-*",
    "_trial_temp*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.py[cod]",
    ".*_cache",
    ".tox",
    ".nox",
    ".coverage",
    ".coverage.*",
    "htmlcov",
    ".idea",
    ".vscode",
    "_build",
    "dropin.cache",
    "*.prof",
)


def copy_checkout(destination: str) -> str:
    """
    Copy the checkout without build output, so that building does not write into it.

    :param destination: the new directory.
    :returns: ``destination``.
    """
    shutil.copytree(CHECKOUT, destination, ignore=shutil.ignore_patterns(*IGNORED))
    return destination


def checkout_files(root: str) -> set[str]:
    """
    The files of a copy made by :func:`copy_checkout`, relative to it, with ``/`` separators.
    """
    found = set()
    for directory, _, files in os.walk(root):
        for name in files:
            relative = os.path.relpath(os.path.join(directory, name), root)
            found.add(relative.replace(os.sep, "/"))
    return found


def clean_env() -> dict[str, str]:
    """
    Our environment without ``PYTHONPATH``, so that the checkout is not importable by accident.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


async def run(testcase: TestCase, argv: Sequence[str], cwd: str, what: str) -> str:
    """
    Run a command to its end; fail with its output unless it exits with status 0.

    :returns: its standard output.
    """
    child = spawn(testcase, list(argv), clean_env(), cwd=cwd)
    code = await wait_ended(child, what, deadline=240)
    testcase.assertEqual(code, 0, child.describe())
    return child.out.decode("utf-8", "replace")


async def make_venv(testcase: TestCase, path: str) -> str:
    """
    A virtualenv without txetcd2 whose dependencies (and pip) are this interpreter's.

    :param path: where to create it.
    :returns: its Python.
    """
    await run(testcase, [sys.executable, "-m", "venv", "--without-pip", path], "/", "venv")
    [site] = glob.glob(os.path.join(path, "lib", "python3*", "site-packages"))
    with open(os.path.join(site, "deps.pth"), "w", encoding="utf-8") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    return os.path.join(path, "bin", "python")


async def pip_install(testcase: TestCase, python: str, *args: str) -> None:
    """
    ``pip install --no-deps ARGS`` into the virtualenv of ``python``.
    """
    await run(
        testcase,
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", *args],
        os.path.dirname(python),
        f"pip install {' '.join(args)}",
    )


def twistd(python: str) -> list[str]:
    """
    ``twistd`` of the virtualenv of ``python`` (its console script, run by that Python).
    """
    return [python, "-c", "from twisted.scripts.twistd import run; run()"]


async def check_plugin(testcase: TestCase, python: str, cwd: str) -> str:
    """
    Check that ``twistd`` in the virtualenv of ``python`` lists ``etcd-watch`` and that
    ``etcd-watch --version`` prints the installed txetcd2's version.

    :param cwd: where to run them (not the checkout: the current directory is on ``sys.path``).
    :returns: the installed txetcd2's version.
    """
    listing = await run(testcase, [*twistd(python), "--help"], cwd, "twistd --help")
    testcase.assertIn("etcd-watch", listing)
    version = await run(
        testcase, [python, "-c", "import txetcd2; print(txetcd2.__version__)"], cwd, "import"
    )
    shown = await run(testcase, [*twistd(python), "etcd-watch", "--version"], cwd, "--version")
    testcase.assertIn(f"txetcd2 version: {version.strip()}", shown.splitlines())
    return version.strip()


#: The sdist and wheel built by :func:`distributions`, once per test run.
_built: dict[str, str] = {}


async def distributions(testcase: TestCase) -> tuple[str, str, str]:
    """
    The sdist and the wheel as ``python -m build`` makes them (the wheel from the sdist), from a
    copy of the checkout; built once per test run, in the first caller's temporary directory
    (trial keeps it until the next run).

    :returns: the copy of the checkout, the sdist and the wheel.
    """
    if not all(os.path.exists(path) for path in _built.values()) or not _built:
        work = os.path.abspath(str(testcase.mktemp()))
        os.makedirs(work)
        source = copy_checkout(os.path.join(work, "source"))
        dist = os.path.join(work, "dist")
        await run(testcase, [sys.executable, "-m", "build", "--outdir", dist, source], work,
                  "python -m build")  # fmt: skip
        [sdist] = glob.glob(os.path.join(dist, "txetcd2-*.tar.gz"))
        [wheel] = glob.glob(os.path.join(dist, "txetcd2-*.whl"))
        _built.update(source=source, sdist=sdist, wheel=wheel)
    return _built["source"], _built["sdist"], _built["wheel"]
