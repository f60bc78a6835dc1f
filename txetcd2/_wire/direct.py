"""
Building frozen records on the request path without attrs' ``__init__``.

attrs makes a frozen class's instances read-only by refusing
``__setattr__``, so its ``__init__`` sets each field through
``object.__setattr__``: about twice the time of plain assignments, for
every record of every answer. :func:`direct_constructor` makes a function
that builds an instance with the same fields by setting the class's slots
through their descriptors (which ``__setattr__`` does not guard), for
classes where that is all ``__init__`` does: slotted, frozen, without
validators, converters, factories or ``__attrs_post_init__``. The class
itself, its instances and its ``__init__`` are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

_T = TypeVar("_T")


def direct_constructor(cls: type[_T]) -> Callable[..., _T]:
    """
    A constructor for ``cls`` that takes its fields as ``__init__`` does
    (in order, or by name, with the same defaults) and sets its slots
    directly.

    :param cls: a slotted, frozen attrs class whose fields have no
        validator, converter or factory, and no ``__attrs_post_init__``
        or slot of its own (such as a cached hash).
    :returns: the constructor, named ``make_<class name>``.
    :raises TypeError: for a class whose ``__init__`` does more than that.
    """
    if not attrs.has(cls) or "__slots__" not in cls.__dict__ or "__attrs_post_init__" in dir(cls):
        raise TypeError(f"{cls.__name__} is not a slotted attrs class without post-init")
    fields = attrs.fields(cls)
    if cls.__setattr__ is object.__setattr__:
        raise TypeError(f"{cls.__name__} is not frozen: its __init__ is fast already")
    hidden = set(cls.__dict__["__slots__"]) - {field.name for field in fields} - {"__weakref__"}
    if hidden:  # e.g. a cached hash, which __init__ would reset
        raise TypeError(f"{cls.__name__} has slots that are not fields: {sorted(hidden)}")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    parameters = []
    lines = []
    for field in fields:
        if field.validator is not None or field.converter is not None or not field.init:
            raise TypeError(f"{cls.__name__}.{field.name} has more than a value")
        if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            raise TypeError(f"{cls.__name__}.{field.name} has a factory default")
        if field.default is attrs.NOTHING:
            parameters.append(field.name)
        else:
            namespace[f"_default_{field.name}"] = field.default
            parameters.append(f"{field.name}=_default_{field.name}")
        namespace[f"_set_{field.name}"] = cls.__dict__[field.name].__set__
        lines.append(f"    _set_{field.name}(self, {field.name})\n")
    name = f"make_{cls.__name__}"
    source = (
        f"def {name}({', '.join(parameters)}):\n"
        "    self = _new(_cls)\n" + "".join(lines) + "    return self\n"
    )
    exec(compile(source, f"<direct constructor of {cls.__qualname__}>", "exec"), namespace)
    constructor: Callable[..., _T] = namespace[name]
    constructor.__doc__ = f"Build a :class:`{cls.__name__}` as its ``__init__`` would, faster."
    return constructor
