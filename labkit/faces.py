"""A folder's public face that stays light: each name is imported from its module the first
time it is read (PEP 562's module ``__getattr__``), so ``import labkit.serving`` costs nothing
until a notebook asks for ``ModelServer``, and what MLServer or the supervisor imports from a
folder does not pull in the rest of it."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_face(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``'s ``__init__``: ``where`` maps each public
    name to the module of the folder that defines it (a name that is a module maps to itself)."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(f"{package}.{module}")
        value = imported if module == name else getattr(imported, name)
        namespace[name] = value  # read once: later reads find it in the module itself
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
