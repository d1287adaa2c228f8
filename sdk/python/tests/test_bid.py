"""The bid helper: the word printed, and exit 1 (the cub's fallback to the static strategy) on any
error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import fixture
import sett_agent as sett
from sett_agent import Artifact, Bid, InputError

SRC = Path(__file__).resolve().parents[1] / "src"
COMMIT = json.dumps(fixture("review")["target_artifact"])


def by_type(a: Artifact) -> Bid:
    return Bid.CLAIM if a.artifact_type == "CodeCommit" else Bid.IGNORE


def test_decide() -> None:
    assert sett.decide(by_type, COMMIT) is Bid.CLAIM
    assert sett.decide(lambda a: "review\n", COMMIT) is Bid.REVIEW
    with pytest.raises(ValueError, match="returned 'yes'"):
        sett.decide(lambda a: "yes", COMMIT)
    with pytest.raises(ValueError, match="returned None"):
        sett.decide(lambda a: None, COMMIT)  # type: ignore[arg-type,return-value]
    with pytest.raises(InputError, match="not JSON"):
        sett.decide(by_type, "{")


def bid(source: str, stdin: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    script = tmp_path / "bid.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, str(script)], input=stdin, capture_output=True, env=env, timeout=60)


def test_a_real_bid_script_prints_one_word(tmp_path: Path) -> None:
    source = """
        import sett_agent as sett
        def decide(a):
            print("considering", a.artifact_type)
            return sett.Bid.CLAIM if a.artifact_type == "CodeCommit" else sett.Bid.IGNORE
        sett.run_bid(decide)
        """
    r = bid(source, COMMIT.encode(), tmp_path)
    assert (r.returncode, r.stdout) == (0, b"claim\n")
    assert b"considering CodeCommit" in r.stderr
    goal = json.dumps(fixture("exclusive")["target_artifact"]).encode()
    assert bid(source, goal, tmp_path).stdout == b"ignore\n"


def test_a_failing_bid_script_exits_1_so_the_static_strategy_applies(tmp_path: Path) -> None:
    r = bid("import sett_agent as sett\nsett.run_bid(lambda a: 1 / 0)\n", COMMIT.encode(), tmp_path)
    assert r.returncode == 1 and r.stdout == b""
    assert b"ZeroDivisionError" in r.stderr and b"static strategy" in r.stderr
    r = bid("import sett_agent as sett\nsett.run_bid(lambda a: 'claim')\n", b"not json", tmp_path)
    assert r.returncode == 1 and b"not JSON" in r.stderr
