"""The package has one table of coded messages: codes are unique and match their names."""

from __future__ import annotations

import ast
import inspect
import re

import textcat_kit.errors as errors_module
from textcat_kit.errors import Errors, Warnings

CODE = re.compile(r"^[EW]\d{3}$")


def _assigned_names(cls: type) -> list[str]:
    """Every name assigned in the class body, duplicates included (vars() would hide them)."""
    tree = ast.parse(inspect.getsource(errors_module))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return [
                target.id
                for stmt in node.body
                if isinstance(stmt, ast.Assign)
                for target in stmt.targets
                if isinstance(target, ast.Name)
            ]
    raise AssertionError(f"class {cls.__name__} not found")


def test_codes_unique_across_tables() -> None:
    names = _assigned_names(Errors) + _assigned_names(Warnings)
    assert names, "empty tables"
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"codes defined twice: {duplicates}"
    assert all(CODE.match(n) for n in names), [n for n in names if not CODE.match(n)]


def test_each_message_starts_with_its_own_code() -> None:
    for cls, prefix in ((Errors, "E"), (Warnings, "W")):
        for name in _assigned_names(cls):
            assert name.startswith(prefix), f"{cls.__name__}.{name} has the wrong prefix"
            message = getattr(cls, name)
            assert isinstance(message, str)
            assert message.startswith(f"[{name}] "), f"{name}: {message[:40]!r}"


def test_no_other_module_defines_a_code_table() -> None:
    """Messages are only defined in textcat_kit/errors.py (other modules import them)."""
    import pathlib

    root = pathlib.Path(errors_module.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "errors.py" and path.parent == root:
            continue
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"\s+[EW]\d{3} = ", line):
                offenders.append(f"{path.relative_to(root)}:{line_no}")
    assert not offenders, offenders
