"""Shared test helpers: the fixture inputs (kept in the cub's exact shape by a Rust test in
sett-core, `the_python_sdk_fixtures_are_tool_inputs`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text(encoding="utf-8")


def fixture(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(fixture_text(name))
    return value


@pytest.fixture
def load() -> Any:
    return fixture
