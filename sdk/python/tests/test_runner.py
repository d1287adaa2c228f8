"""Running a handler: the one line on stdout, exit codes, and what becomes of errors of the agent
(exceptions, wrong return values, stray prints) — both in-process and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import fixture_text
import sett_agent as sett
from sett_agent import ClaimType, Output, ToolInput

SRC = Path(__file__).resolve().parents[1] / "src"


def plan(task: ToolInput) -> Output:
    return sett.artifact("Plan", f"plan for {task.target.payload}", summary="planned")


def test_respond_returns_the_handlers_output() -> None:
    out = sett.respond(plan, fixture_text("exclusive"), log=io.StringIO())
    assert out.payload == "plan for Build a to-do service"


def test_an_async_handler_works() -> None:
    async def handle(task: ToolInput) -> Output:
        return sett.terminal("Done", task.claim_type.value)

    assert sett.respond(handle, fixture_text("resume"), log=io.StringIO()).payload == "resume"


def test_an_exception_becomes_a_failure_with_type_message_and_traceback() -> None:
    def handle(task: ToolInput) -> Output:
        raise KeyError("storage")

    log = io.StringIO()
    out = sett.respond(handle, fixture_text("exclusive"), log=log)
    assert out.structural_type is sett.StructuralType.FAILURE
    assert out.artifact_type == "AgentError"
    assert out.summary == "the agent raised KeyError: 'storage'"
    assert isinstance(out.payload, dict)
    details = out.payload["details"]
    assert isinstance(details, dict)
    assert details["error_type"] == "KeyError" and details["message"] == "'storage'"
    trace = details["traceback"]
    assert isinstance(trace, str) and "raise KeyError" in trace and "in handle" in trace
    assert "Traceback" in log.getvalue() and "raise KeyError" in log.getvalue(), "the full traceback is logged"


def test_a_long_traceback_keeps_its_tail() -> None:
    def recurse(n: int) -> Output:
        if n == 0:
            raise RuntimeError("deep " + "y" * 10_000)
        return recurse(n - 1)

    out = sett.respond(lambda task: recurse(50), fixture_text("exclusive"), log=io.StringIO())
    assert isinstance(out.payload, dict) and isinstance(out.payload["details"], dict)
    trace = out.payload["details"]["traceback"]
    assert isinstance(trace, str) and len(trace) == sett._runner.TRACEBACK_TAIL
    assert trace.startswith("…") and trace.rstrip().endswith("y")
    assert out.summary is not None and len(out.summary) <= 200


def test_an_exception_in_an_output_constructor_is_reported_too() -> None:
    out = sett.respond(lambda task: sett.request_changes({}), fixture_text("review"), log=io.StringIO())
    assert out.artifact_type == "AgentError" and "ValueError" in (out.summary or "")


@pytest.mark.parametrize(
    ("returned", "message"),
    [(None, "returned None (a missing return?)"), ({"artifact_type": "Plan"}, "returned a dict"), ("done", "returned a str")],
)
def test_a_handler_that_returns_no_output_gets_a_failure(returned: Any, message: str) -> None:
    out = sett.respond(lambda task: returned, fixture_text("exclusive"), log=io.StringIO())
    assert out.structural_type is sett.StructuralType.FAILURE and out.artifact_type == "AgentError"
    assert isinstance(out.payload, str) and message in out.payload and "artifact()" in out.payload


def test_a_payload_mutated_into_non_json_is_reported() -> None:
    def handle(task: ToolInput) -> Output:
        payload: dict[str, Any] = {"a": 1}
        out = sett.artifact("Plan", payload)
        payload["b"] = object()
        return out

    out = sett.respond(handle, fixture_text("exclusive"), log=io.StringIO())
    assert out.artifact_type == "AgentError" and "must be JSON" in (out.summary or "")


def test_invalid_input_becomes_an_invalid_tool_input_failure() -> None:
    called = []
    log = io.StringIO()
    out = sett.respond(lambda task: called.append(task) or plan(task), b'{"claim_type": "later"}', log=log)
    assert called == [], "the handler does not run on bad input"
    assert out.structural_type is sett.StructuralType.FAILURE and out.artifact_type == "InvalidToolInput"
    assert isinstance(out.payload, str) and 'no "target_artifact"' in out.payload
    assert "invalid tool input" in log.getvalue()


def test_prints_in_the_handler_go_to_the_log() -> None:
    def chatty(task: ToolInput) -> Output:
        print("thinking…")
        return plan(task)

    log, stdout = io.StringIO(), io.BytesIO()
    code = sett.execute(chatty, stdin=io.BytesIO(fixture_text("exclusive").encode()), stdout=stdout, log=log)
    assert code == 0
    assert "thinking…" in log.getvalue()
    assert json.loads(stdout.getvalue())["artifact_payload"] == "plan for Build a to-do service"


def run_agent(source: str, stdin: bytes, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    script = tmp_path / "agent.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    environ = {**os.environ, "PYTHONPATH": str(SRC), **env}
    return subprocess.run([sys.executable, str(script)], input=stdin, capture_output=True, env=environ, timeout=60)


def test_a_real_agent_prints_one_line_and_exits_0(tmp_path: Path) -> None:
    r = run_agent(
        """
        import subprocess, sys
        import sett_agent as sett
        def handle(task):
            print("a stray print")
            sys.stdout.write("and a write\\n")
            subprocess.run(["echo", "a subprocess writes to fd 1"], check=True)
            return sett.artifact("Plan", task.target.payload)
        sett.run(handle)
        """,
        fixture_text("exclusive").encode(),
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1, r.stdout
    assert json.loads(lines[0])["artifact_payload"] == "Build a to-do service"
    err = r.stderr.decode()
    assert "a stray print" in err and "and a write" in err and "a subprocess writes to fd 1" in err


def test_a_real_agent_that_raises_prints_a_failure_and_exits_0(tmp_path: Path) -> None:
    r = run_agent(
        """
        import sett_agent as sett
        def handle(task):
            return {"storage": "sqlite"}["database"]
        sett.run(handle)
        """,
        fixture_text("exclusive").encode(),
        tmp_path,
    )
    assert r.returncode == 0, "the cub reads stdout only after exit 0"
    out = json.loads(r.stdout)
    assert out["structural_type"] == "Failure" and out["artifact_type"] == "AgentError"
    assert out["artifact_payload"]["details"]["error_type"] == "KeyError"
    assert "Traceback" in r.stderr.decode()


def test_a_real_agent_given_garbage_prints_a_failure(tmp_path: Path) -> None:
    r = run_agent("import sett_agent as sett\nsett.run(lambda task: sett.approve())\n", b"\x00garbage", tmp_path)
    assert r.returncode == 0
    assert json.loads(r.stdout)["artifact_type"] == "InvalidToolInput"


def test_sys_exit_in_the_handler_is_respected(tmp_path: Path) -> None:
    r = run_agent(
        "import sys, sett_agent as sett\nsett.run(lambda task: sys.exit(3))\n", fixture_text("exclusive").encode(), tmp_path
    )
    assert r.returncode == 3 and r.stdout == b""


def test_claim_types_drive_a_handler() -> None:
    def handle(task: ToolInput) -> Output:
        if task.claim_type is ClaimType.REWORK:
            return sett.artifact("Plan", "; ".join(f.text for f in task.review_feedback))
        if task.claim_type is ClaimType.RESUME and task.latest_answer:
            return sett.artifact("Plan", task.latest_answer.text)
        if task.claim_type is ClaimType.REVIEW:
            return sett.approve()
        return sett.question("Which storage?")

    log = io.StringIO()
    assert sett.respond(handle, fixture_text("exclusive"), log=log).structural_type is sett.StructuralType.QUESTION
    assert sett.respond(handle, fixture_text("resume"), log=log).payload == "Use SQLite"
    assert sett.respond(handle, fixture_text("review"), log=log).payload == {}
    assert sett.respond(handle, fixture_text("rework"), log=log).payload == '{"issue":"add a usage section"}'
