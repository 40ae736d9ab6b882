"""Make some top-level packages un-importable in the current process.

The development environment has torch installed, and thinc imports it as soon as spaCy is
imported when it can. To see what a torch-free install does (which modules load, how much
memory the process takes) without building a second virtualenv, block the packages before
importing spaCy: ``import torch`` then raises ``ModuleNotFoundError`` exactly as if torch
were not installed, and thinc falls back to running without it. The blocked packages'
entry points (e.g. spacy-transformers' ``transformer`` factory, which spaCy loads whenever
it creates a pipeline) are hidden from catalogue too, as they would be if uninstalled.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from types import ModuleType

TORCH_STACK = ("torch", "transformers", "spacy_transformers")


class _Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named '{fullname}' (blocked)", name=fullname)
        return None


def block_imports(names: Iterable[str] = TORCH_STACK) -> None:
    """Block ``names`` (top-level packages) for the rest of the process.

    Must run before anything imports them; fails if one is already imported.
    """
    import catalogue

    names = tuple(names)
    loaded = [name for name in names if name in sys.modules]
    if loaded:
        raise RuntimeError(f"cannot block {loaded}: already imported")
    sys.meta_path.insert(0, _Blocker(names))

    def allowed(entry_point: metadata.EntryPoint) -> bool:
        return entry_point.value.split(":")[0].split(".")[0] not in names

    available = catalogue.AVAILABLE_ENTRY_POINTS
    if isinstance(available, dict):  # Python < 3.12: group -> entry points
        catalogue.AVAILABLE_ENTRY_POINTS = {
            group: [ep for ep in eps if allowed(ep)] for group, eps in available.items()
        }
    else:
        catalogue.AVAILABLE_ENTRY_POINTS = metadata.EntryPoints(
            ep for ep in available if allowed(ep)
        )
