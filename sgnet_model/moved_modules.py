"""Old module paths that still import: each package's table of modules that moved to a subpackage (issue 28).

``import sgnet_model.ytvis`` gives the module ``sgnet_model.data.ytvis`` itself (one module object under both names,
so classes and module state are shared) and warns with a DeprecationWarning that names the new path; the
submodules of a moved package follow it (``sgnet_ros.replay.cli`` is ``sgnet_ros.tools.replay.cli``).
``python -m`` with an old path runs the new module, or the new package's ``__main__``. A name that a split moved to
a sibling module is not found under the old path: Python's ImportError then names the new module it looked in.

Each package registers its table in its ``__init__``: a finder first in ``sys.meta_path`` that answers only for
the names in the tables (docs/architecture.md, "Old import paths").
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import CodeType, ModuleType


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds old module paths and loads them as the modules they moved to."""

    def __init__(self) -> None:
        self.moved: dict[str, str] = {}
        self.new_specs: dict[str, importlib.machinery.ModuleSpec] = {}  # old path -> the new module's own spec

    def add(self, moved: Mapping[str, str]) -> None:
        self.moved.update(moved)

    def new_name(self, fullname: str) -> str | None:
        """The module's new path: its own entry, or its moved package's new path with the rest of the name."""
        for old, new in self.moved.items():
            if fullname == old or fullname.startswith(old + "."):
                return new + fullname[len(old):]
        return None

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = self.new_name(fullname)
        if new is None:
            return None
        runnable = runnable_spec(new)  # its origin is the file ``python -m`` names in sys.argv[0]
        return importlib.util.spec_from_loader(fullname, self, origin=runnable.origin if runnable else None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = self.new_name(spec.name)
        warnings.warn(f"{spec.name} moved to {new}: import {new} instead", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self.new_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (create_module gave the new module, already imported): give it back its own spec, which
        the import system replaced with the old path's."""
        module.__spec__ = self.new_specs.pop(module.__spec__.name)

    def get_code(self, fullname: str) -> CodeType | None:
        """The code ``python -m <old path>`` runs: the new module's, or its package's ``__main__``'s."""
        new = self.new_name(fullname)
        spec = runnable_spec(new)
        if spec is None or not isinstance(spec.loader, importlib.abc.InspectLoader):
            raise ImportError(f"{fullname} moved to {new}, which cannot be run with python -m")
        print(f"{fullname} moved to {new}: run python -m {new}", file=sys.stderr)
        return spec.loader.get_code(spec.name)


def runnable_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of what ``python -m name`` runs: the module, or the package's ``__main__``."""
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations is not None:
        spec = importlib.util.find_spec(name + ".__main__")
    return spec


FINDER = MovedModules()


def register(moved: Mapping[str, str]) -> None:
    """Make the old paths in ``moved`` (old dotted path -> new dotted path) import as their new modules."""
    FINDER.add(moved)
    if FINDER not in sys.meta_path:
        sys.meta_path.insert(0, FINDER)
