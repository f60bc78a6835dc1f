"""
Write the intersphinx inventories the docs link to: Python's standard library, Twisted, treq and
hyperlink, made from the modules installed here and pointing at each project's public docs.

The docs build runs without network, so it cannot download the projects' own ``objects.inv``.
Run this after upgrading Twisted or treq, and commit the result::

    python docs/_inventories/make_inventories.py
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import os
import pkgutil
import sys
import types
from collections.abc import Iterator

import sphobjinv
from zope.interface.interface import InterfaceClass

HERE = os.path.dirname(os.path.abspath(__file__))

#: Twisted's API docs (pydoctor): one page per module and per class.
TWISTED_PACKAGES = (
    "twisted.application",
    "twisted.internet",
    "twisted.logger",
    "twisted.names",
    "twisted.plugin",
    "twisted.python",
    "twisted.trial",
    "twisted.web",
)
#: Standard library modules our signatures and docstrings mention.
STDLIB_MODULES = (
    "abc",
    "asyncio",
    "collections",
    "collections.abc",
    "concurrent.futures",
    "contextlib",
    "datetime",
    "enum",
    "io",
    "ipaddress",
    "json",
    "os",
    "pathlib",
    "socket",
    "ssl",
    "subprocess",
    "threading",
    "types",
    "typing",
)


def public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def role_of(obj: object) -> str | None:
    if isinstance(obj, InterfaceClass):
        return "class"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    if isinstance(obj, (types.ModuleType,)):
        return None
    return "data"


def members(module: types.ModuleType, moved: bool = True) -> Iterator[tuple[str, object]]:
    """
    The public objects a module documents: those defined in it, and those it re-exports through
    ``__all__`` (only from a private module when ``moved``: pydoctor documents an object where
    it is defined unless that module is private).
    """
    exported = set(getattr(module, "__all__", ()))
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        home = getattr(obj, "__module__", None)
        if home == module.__name__ or name in exported:
            if moved and home is not None and home != module.__name__ and public(home):
                continue  # documented where it is defined
            yield name, obj


def class_members(cls: object) -> Iterator[tuple[str, str]]:
    if isinstance(cls, InterfaceClass):
        for name in cls.names():
            yield name, "method" if callable(cls[name]) else "attribute"
        return
    assert isinstance(cls, type)
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if callable(value) or isinstance(value, (classmethod, staticmethod)):
            yield name, "method"
        else:
            yield name, "attribute"


class Inventory:
    def __init__(self, project: str, version: str) -> None:
        self.inv = sphobjinv.Inventory()
        self.inv.project = project
        self.inv.version = version
        self.seen: set[tuple[str, str]] = set()

    def add(self, name: str, role: str, uri: str) -> None:
        if (name, role) in self.seen:
            return
        self.seen.add((name, role))
        self.inv.objects.append(sphobjinv.DataObjStr(name, "py", role, "1", uri, "-"))

    def write(self, filename: str) -> None:
        text = self.inv.data_file(contract=True)
        sphobjinv.writebytes(os.path.join(HERE, filename), sphobjinv.compress(text))
        print(f"{filename}: {len(self.inv.objects)} objects")


def walk(package_names: tuple[str, ...]) -> Iterator[types.ModuleType]:
    for package_name in package_names:
        package = importlib.import_module(package_name)
        yield package
        path = getattr(package, "__path__", None)
        if path is None:
            continue
        for info in pkgutil.walk_packages(path, package_name + "."):
            if not public(info.name) or ".test" in info.name:
                continue
            try:
                yield importlib.import_module(info.name)
            except Exception:  # platform-specific modules (win32, kqueue, ...)
                continue


def twisted_inventory() -> None:
    import twisted

    inv = Inventory("Twisted", twisted.__version__)
    for module in walk(TWISTED_PACKAGES):
        inv.add(module.__name__, "module", f"{module.__name__}.html")
        for name, obj in members(module):
            role = role_of(obj)
            if role is None:
                continue
            full = f"{module.__name__}.{name}"
            # Annotations name an object by where it is defined, docstrings by where it is
            # documented: register both.
            real = f"{getattr(obj, '__module__', module.__name__)}.{name}"
            if role in ("class", "exception"):
                page = f"{full}.html"
                for alias in {full, real}:
                    inv.add(alias, role, page)
                    for member, member_role in class_members(obj):
                        inv.add(f"{alias}.{member}", member_role, f"{page}#{member}")
            else:
                for alias in {full, real}:
                    inv.add(alias, role, f"{module.__name__}.html#{name}")
    inv.write("twisted.inv")


def sphinx_style(project: str, version: str, modules: tuple[str, ...], page: str) -> Inventory:
    """
    An inventory for Sphinx-built docs where every object of ``modules`` is on ``page``.
    """
    inv = Inventory(project, version)
    for module_name in modules:
        module = importlib.import_module(module_name)
        inv.add(module_name, "module", f"{page.format(module=module_name)}#module-{module_name}")
        for name, obj in members(module, moved=False):
            role = role_of(obj)
            if role is None:
                continue
            full = f"{module_name}.{name}"
            uri = f"{page.format(module=module_name)}#{full}"
            inv.add(full, role, uri)
            if role in ("class", "exception"):
                for member, member_role in class_members(obj):
                    inv.add(f"{full}.{member}", member_role, f"{uri}.{member}")
    return inv


def treq_inventory() -> None:
    import treq

    modules = ("treq", "treq.client", "treq.content", "treq.response", "treq.testing")
    version = getattr(treq, "__version__", "")
    inv = sphinx_style("treq", str(version), modules, "api.html")
    inv.write("treq.inv")


def hyperlink_inventory() -> None:
    from importlib.metadata import version

    inv = sphinx_style("hyperlink", version("hyperlink"), ("hyperlink",), "api.html")
    inv.write("hyperlink.inv")


def python_inventory() -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    inv = Inventory("Python", version)
    for name, obj in vars(builtins).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            inv.add(name, "exception", f"library/exceptions.html#{name}")
        elif inspect.isclass(obj):
            inv.add(name, "class", f"library/functions.html#{name}")
        elif callable(obj):
            inv.add(name, "function", f"library/functions.html#{name}")
    for name in ("None", "True", "False", "Ellipsis", "NotImplemented"):
        inv.add(name, "data", f"library/constants.html#{name}")
    for module_name in STDLIB_MODULES:
        module = importlib.import_module(module_name)
        page = f"library/{module_name}.html"
        inv.add(module_name, "module", f"{page}#module-{module_name}")
        for name, obj in vars(module).items():
            if name.startswith("_") or isinstance(obj, types.ModuleType):
                continue
            if module_name != "typing" and getattr(obj, "__module__", None) not in (
                module_name,
                None,
            ):
                home = getattr(obj, "__module__", "")
                if not (home.startswith("_") or home.startswith(module_name)):
                    continue
            role = role_of(obj) or "data"
            if module_name == "typing" and role == "function" and name[:1].isupper():
                role = "data"  # typing.Optional etc. are documented as data
            full = f"{module_name}.{name}"
            inv.add(full, role, f"{page}#{full}")
            if inspect.isclass(obj):
                for member, member_role in class_members(obj):
                    inv.add(f"{full}.{member}", member_role, f"{page}#{full}.{member}")
    inv.write("python.inv")


def main() -> None:
    python_inventory()
    twisted_inventory()
    treq_inventory()
    hyperlink_inventory()


if __name__ == "__main__":
    main()
