"""The package's own rules: standard library only, typed, every module saying what it owns (the
SDK and the example agents written with it)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "src" / "sett_agent").glob("*.py"))
EXAMPLES = sorted((ROOT.parents[1] / "examples" / "agents-python").glob("*/*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_sdk_imports_the_standard_library_only() -> None:
    assert SOURCES
    for path in SOURCES:
        outside = imported_modules(path) - set(sys.stdlib_module_names) - {"sett_agent"}
        assert not outside, f"{path.name} imports {sorted(outside)}: the SDK uses the standard library only"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^dependencies = \[\]$", pyproject, re.M), "pyproject.toml declares no dependency"


def test_the_examples_import_the_sdk_and_the_standard_library_only() -> None:
    assert len(EXAMPLES) >= 4
    for path in EXAMPLES:
        outside = imported_modules(path) - set(sys.stdlib_module_names) - {"sett_agent"}
        assert not outside, f"{path} imports {sorted(outside)}"
        assert path.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3\n"), f"{path}: shebang"
        assert path.stat().st_mode & 0o111, f"{path} is executable"


def test_every_module_starts_with_a_docstring() -> None:
    for path in SOURCES + EXAMPLES:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and doc.strip(), f"{path} starts with a docstring saying what it owns"


def test_the_package_is_typed() -> None:
    assert (ROOT / "src" / "sett_agent" / "py.typed").exists()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
