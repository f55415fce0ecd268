"""The zoo's families as ``lstm-zoo models`` lists them, in milliseconds.

Importing ``zoo`` imports Keras and TensorFlow (seconds); listing what is
there should not. This reads each family module's source instead of running
it: the ``@register(...)`` decorator's literal arguments (name, heads, input
axes) and the builder's docstring, the same things ``zoo.get(name)``
reports once imported (``tests/zoo/test_zoo.py`` holds the two equal).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os

# As zoo.registry declares them (its defaults): kept equal by the tests.
DEFAULT_HEADS = ("forecast", "classification", "language_model")
DEFAULT_AXES = ("time", "features")


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    heads: tuple[str, ...]
    input_axes: tuple[str, ...]
    summary: str


def families_folder() -> str:
    """``zoo/families`` of the installed package, found without importing it."""
    spec = importlib.util.find_spec("zoo")
    return os.path.join(list(spec.submodule_search_locations)[0], "families")


def catalogue(folder: str | None = None) -> list[Entry]:
    """Every family registered by a module in ``folder``, sorted by name."""
    folder = folder or families_folder()
    entries = []
    for file in sorted(os.listdir(folder)):
        if file.endswith(".py"):
            with open(os.path.join(folder, file), encoding="utf-8") as f:
                entries += _registered(ast.parse(f.read(), file))
    return sorted(entries, key=lambda e: e.name)


def _registered(module: ast.Module) -> list[Entry]:
    found = []
    for node in module.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name)
                    and deco.func.id == "register"):
                given = {k.arg: k.value for k in deco.keywords}
                doc = ast.get_docstring(node) or ""
                found.append(Entry(
                    name=ast.literal_eval(deco.args[0]),
                    heads=_literal(given.get("heads"), DEFAULT_HEADS),
                    input_axes=_literal(given.get("input_axes"), DEFAULT_AXES),
                    summary=doc.splitlines()[0].replace("``", "") if doc else ""))
    return found


def _literal(node, default):
    return tuple(ast.literal_eval(node)) if node is not None else default
