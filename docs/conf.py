"""
Sphinx configuration for txetcd2's docs: ``make docs`` (warnings are errors).

The API reference documents each public object once, on the page of the first public module
(``FACADES`` order) that exports it; references to any other public or private path of the
same object (``txetcd2.EtcdClient``, ``txetcd2._client.EtcdClient``, or a bare
``EtcdResponse`` in a docstring) are resolved to that page. A reference to something that is
not documented stays broken, and fails the build.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import sys
from typing import Any, cast

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.domains.python import PythonDomain
from sphinx.environment import BuildEnvironment
from sphinx.ext import intersphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import txetcd2  # noqa: E402

project = "txetcd2"
author = "txetcd2 developers"
copyright = "txetcd2 developers"
version = release = txetcd2.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", "_inventories", "README.rst"]
nitpicky = True
default_role = "py:obj"
html_theme = "alabaster"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
autoclass_content = "both"

# No network at build time: the inventories are made by _inventories/make_inventories.py from
# the installed packages, and point at each project's published docs.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", os.path.join(HERE, "_inventories", "python.inv")),
    "twisted": (
        "https://docs.twisted.org/en/stable/api/",
        os.path.join(HERE, "_inventories", "twisted.inv"),
    ),
    "treq": (
        "https://treq.readthedocs.io/en/latest/",
        os.path.join(HERE, "_inventories", "treq.inv"),
    ),
    "hyperlink": (
        "https://hyperlink.readthedocs.io/en/latest/",
        os.path.join(HERE, "_inventories", "hyperlink.inv"),
    ),
}

#: The public modules, in the order that decides where an object exported by several is shown.
FACADES = (
    "txetcd2.client",
    "txetcd2.models",
    "txetcd2.watch",
    "txetcd2.errors",
    "txetcd2.admin",
    "txetcd2.auth",
    "txetcd2.blocking",
    "txetcd2.recipes",
    "txetcd2.testing",
)


def _homes() -> dict[int, str]:
    """
    Where each public object is documented: ``id(object)`` to its full documented name.
    """
    homes: dict[int, str] = {}
    for module_name in FACADES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            homes.setdefault(id(getattr(module, name)), f"{module_name}.{name}")
    return homes


HOMES = _homes()
#: Short names (``EtcdResponse``) that are unique among the documented objects.
SHORT: dict[str, str] = {}
_seen_short: dict[str, int] = {}
for _full in HOMES.values():
    _short = _full.rsplit(".", 1)[1]
    _seen_short[_short] = _seen_short.get(_short, 0) + 1
    SHORT[_short] = _full
SHORT = {k: v for k, v in SHORT.items() if _seen_short[k] == 1}


class FacadeDirective(SphinxDirective):
    """
    ``.. facade:: txetcd2.watch``: the module's docstring, then each object it exports and that
    no earlier facade documents.
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        lines = [f".. automodule:: {module_name}", ""]
        lines += [f".. currentmodule:: {module_name}", ""]
        elsewhere = []
        for name in module.__all__:
            obj = getattr(module, name)
            home = HOMES[id(obj)]
            if home != f"{module_name}.{name}":
                elsewhere.append(home)
                continue
            options = []
            if inspect.isclass(obj):
                kind = "exception" if issubclass(obj, BaseException) else "class"
                options = ["   :members:", *_inherited_options(obj)]
            elif inspect.isfunction(obj):
                kind = "function"
            else:
                kind = "data"
            lines += [f".. auto{kind}:: {name}", *options, ""]
        if elsewhere:
            refs = ", ".join(f":obj:`~{home}`" for home in elsewhere)
            lines += [f"Also exported here: {refs}.", ""]
        content = StringList(lines, source=f"<facade {module_name}>")
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(content, 0, node)
        return list(node.children)


def _undocumented_ours(cls: type) -> bool:
    """
    Whether ``cls`` is one of our classes that the reference does not describe (a private base).
    """
    return cls.__module__.startswith("txetcd2") and id(cls) not in HOMES


def _inherited_options(cls: type) -> list[str]:
    """
    Show the members a class inherits from our undocumented bases (``Watcher.on`` from
    ``Listeners``), not those from Twisted's or the standard library's.
    """
    if not any(_undocumented_ours(base) for base in cls.__mro__[1:]):
        return []
    others = [
        base.__name__ for base in cls.__mro__[1:] if not base.__module__.startswith("txetcd2")
    ]
    return [f"   :inherited-members: {', '.join(others)}"]


def process_bases(app: Sphinx, name: str, obj: object, options: Any, bases: list[type]) -> None:
    """
    Show the bases a reader can look up: an undocumented private base of ours is replaced by its
    own bases.
    """
    shown: list[type] = []
    pending = list(bases)
    while pending:
        base = pending.pop(0)
        if _undocumented_ours(base):
            pending[:0] = list(base.__bases__)
        elif base not in shown:
            shown.append(base)
    bases[:] = [base for base in shown if base is not object] or [object]


def process_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None]:
    """
    Name zope interfaces in signatures by their dotted path, not their repr.
    """

    def clean(text: str | None) -> str | None:
        return None if text is None else INTERFACE_REPR.sub(r"\1", text)

    return clean(signature), clean(return_annotation)


INTERFACE_REPR = re.compile(r"<InterfaceClass ([\w.]+)>")

#: Names annotations use for objects of other projects, and what they are.
EXTERNAL_ALIASES = {"datetime": "datetime.datetime"}


def _target_of(target: str) -> str | None:
    """
    The documented name of a reference's target, if it is one of ours under another name.
    """
    if target in SHORT:
        return SHORT[target]
    first, _, rest = target.partition(".")
    if first in SHORT:
        return f"{SHORT[first]}.{rest}" if rest else SHORT[first]
    if not target.startswith("txetcd2"):
        return None
    parts = target.split(".")
    # The longest importable module prefix, then attributes down to a documented object.
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for i in range(cut, len(parts)):
            obj = getattr(obj, parts[i], None)
            if obj is None:
                return None
            if id(obj) in HOMES:
                return ".".join([HOMES[id(obj)], *parts[i + 1 :]])
        return None
    return None


def _unique_in_inventories(env: BuildEnvironment, target: str) -> str | None:
    """
    The one object of the inventories whose dotted name ends with ``target``, if there is
    exactly one (annotations imported under ``TYPE_CHECKING`` reach autodoc as bare names,
    e.g. ``IReactorTime``).
    """
    if target.startswith("txetcd2"):
        return None
    inventory = getattr(env, "intersphinx_inventory", {})
    suffix = "." + target
    found: dict[str, str] = {}  # page -> the shortest name documented there
    for objtype, objects in inventory.items():
        if not objtype.startswith("py:") or objtype == "py:module":
            continue
        for name, entry in objects.items():
            if name.endswith(suffix):
                uri = entry[2] if isinstance(entry, tuple) else entry.uri
                if uri not in found or len(name) < len(found[uri]):
                    found[uri] = name
    return next(iter(found.values())) if len(found) == 1 else None


def _exists_privately(target: str) -> bool:
    """
    Whether ``target`` names an existing object in one of our private modules.
    """
    parts = target.split(".")
    if parts[0] != "txetcd2" or not any(part.startswith("_") for part in parts[1:]):
        return False
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    return False


#: The ``:ivar name:`` fields of each documented class: class full name -> names.
IVARS: dict[str, set[str]] = {}
IVAR_FIELD = re.compile(r"\s*:ivar\s+(?:[^:]*\s)?(\w+):")


def collect_ivars(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    """
    Remember the instance variables a class documents with ``:ivar name:``, so that
    ``:attr:`name``` can lead to them.
    """
    if what in ("class", "exception"):
        for line in lines:
            match = IVAR_FIELD.match(line)
            if match:
                IVARS.setdefault(name, set()).add(match.group(1))


def _ivar_owner(node: pending_xref) -> str | None:
    """
    The documented class whose ``:ivar:`` field a reference names, if it names one.
    """
    target: str = node["reftarget"]
    module, context = node.get("py:module"), node.get("py:class")
    owners: list[str | None]
    if "." in target:
        owner, attribute = target.rsplit(".", 1)
        owners = [f"{module}.{owner}", _target_of(owner), owner]
    else:
        attribute = target
        owners = [f"{module}.{context}"] if context else []
    for candidate in owners:
        if candidate and attribute in IVARS.get(candidate, ()):
            return candidate
    return None


def resolve_alias(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.Element
) -> nodes.Element | None:
    """
    Resolve a Python reference to one of our objects given by another of its names.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    interface = INTERFACE_REPR.fullmatch(target)
    if interface is not None:
        # A zope interface as a property's type (autodoc shows its repr): link its real name.
        alias = node.deepcopy()
        alias["reftarget"] = interface.group(1)
        text = nodes.Text(interface.group(1).rsplit(".", 1)[1])
        linked: nodes.Element | None = intersphinx.missing_reference(app, env, alias, text)
        return linked
    if node.get("reftype") in ("attr", "obj"):
        owner = _ivar_owner(node)
        if owner is not None:
            return _refnode(app, env, node, contnode, owner)
    external = EXTERNAL_ALIASES.get(target) or _unique_in_inventories(env, target)
    if external is not None:
        alias = node.deepcopy()
        alias["reftarget"] = external
        found: nodes.Element | None = intersphinx.missing_reference(app, env, alias, contnode)
        return found
    documented = _target_of(target)
    if documented is None:
        if _exists_privately(target):
            # A private collaborator named in a signature: real, but not part of the reference.
            return contnode
        return None
    if documented == target:
        return None
    return _refnode(app, env, node, contnode, documented)


def _refnode(
    app: Sphinx,
    env: BuildEnvironment,
    node: pending_xref,
    contnode: nodes.Element,
    documented: str,
) -> nodes.Element | None:
    """
    A link to the documented object ``documented`` (a full name), or None if there is none.
    """
    domain = cast(PythonDomain, env.get_domain("py"))
    for objtype in ("class", "exception", "function", "method", "attribute", "data", "obj"):
        found_objects = domain.find_obj(env, "", "", documented, objtype, 1)
        if found_objects:
            full, obj_entry = found_objects[0]
            return make_refnode(
                app.builder, node["refdoc"], obj_entry.docname, obj_entry.node_id, contnode, full
            )
    return None


#: Scripts in examples/ that are measurements, not how-tos.
NOT_HOWTO = {"measure_auth_cost"}


def check_pages(app: Sphinx) -> None:
    """
    Every example is shown on a page (its how-to), and every public module has its API page
    (a warning, so an error in ``make docs``, if not).
    """
    if os.path.abspath(app.srcdir) != HERE:
        return
    warn = logging.getLogger(__name__).warning
    for info in pkgutil.iter_modules(txetcd2.__path__):
        name = f"txetcd2.{info.name}"
        if info.name.startswith("_"):
            continue
        if name not in FACADES:
            warn(f"{name} is public but not in FACADES (docs/conf.py)")
        if not os.path.exists(os.path.join(HERE, "api", f"{info.name}.rst")):
            warn(
                f"{name} has no API page: write docs/api/{info.name}.rst holding "
                f"'.. facade:: {name}' and list it in docs/api/index.rst"
            )
    examples = {n[:-3] for n in os.listdir(os.path.join(ROOT, "examples")) if n.endswith(".py")}
    texts = []
    for directory, _, files in os.walk(HERE):
        for page in files:
            if page.endswith(".rst") and page != "README.rst":
                with open(os.path.join(directory, page), encoding="utf-8") as f:
                    texts.append(f.read())
    shown = "\n".join(texts)
    for name in sorted(examples - NOT_HOWTO):
        if f"examples/{name}.py" not in shown:
            warn(
                f"examples/{name}.py is in no page: write docs/howto/{name}.rst (see the "
                "others) and list it in docs/howto/index.rst, or show it in docs/recipes.rst"
            )


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("facade", FacadeDirective)
    app.connect("builder-inited", check_pages)
    app.connect("missing-reference", resolve_alias)
    app.connect("autodoc-process-bases", process_bases)
    app.connect("autodoc-process-docstring", collect_ivars)
    app.connect("autodoc-process-signature", process_signature)
    # IVARS is filled while reading and used while writing, in one process.
    return {"parallel_read_safe": False}
