"""Outputs: what each constructor prints, what it refuses, and the optional usage fields."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest

from sett_agent import (
    Output,
    StructuralType,
    Usage,
    approve,
    artifact,
    failure,
    question,
    request_changes,
    terminal,
)


def printed(o: Output) -> dict[str, object]:
    text = o.to_json()
    assert "\n" not in text, "one line"
    value: dict[str, object] = json.loads(text)
    return value


def test_an_artifact() -> None:
    assert printed(artifact("CodeCommit", "3f2a", summary="Add /health")) == {
        "structural_type": "Standard",
        "artifact_type": "CodeCommit",
        "artifact_payload": "3f2a",
        "summary": "Add /health",
    }


def test_json_payloads_are_kept_as_json() -> None:
    out = printed(artifact("Plan", {"steps": ["a", "b"], "n": 2, "ok": True, "none": None}))
    assert out["artifact_payload"] == {"steps": ["a", "b"], "n": 2, "ok": True, "none": None}
    assert "summary" not in out and "usage" not in out


def test_a_terminal() -> None:
    out = printed(terminal("Published", "3f2a", summary="published"))
    assert out["structural_type"] == "Terminal" and out["artifact_type"] == "Published"


def test_reviews() -> None:
    assert printed(approve()) == {
        "structural_type": "Review",
        "artifact_type": "Review",
        "artifact_payload": {},
        "summary": "approved",
    }
    assert "summary" not in printed(approve(None))
    out = printed(request_changes({"issue": "add a usage section"}, summary="needs a usage section"))
    assert out["structural_type"] == "Review"
    assert out["artifact_payload"] == {"issue": "add a usage section"}
    assert printed(request_changes("Name the storage"))["artifact_payload"] == "Name the storage"


@pytest.mark.parametrize("empty", [None, "", "   ", {}, [], "{}", " [ ] ", "{ }"])
def test_feedback_that_would_approve_is_refused(empty: object) -> None:
    with pytest.raises(ValueError, match="use approve"):
        request_changes(empty)  # type: ignore[arg-type]


def test_a_question() -> None:
    assert printed(question("Which storage should the service use?")) == {
        "structural_type": "Question",
        "artifact_type": "Clarification",
        "artifact_payload": "Which storage should the service use?",
    }
    assert printed(question("Port?", artifact_type="PortQuestion"))["artifact_type"] == "PortQuestion"
    with pytest.raises(ValueError, match="question's text"):
        question("  ")


def test_a_failure() -> None:
    out = printed(failure("the goal is empty"))
    assert out == {
        "structural_type": "Failure",
        "artifact_type": "AgentFailure",
        "artifact_payload": "the goal is empty",
        "summary": "the goal is empty",
    }
    out = printed(failure("the API refused\nthe key", artifact_type="LlmRefused", details={"status": 401}))
    assert out["artifact_payload"] == {"reason": "the API refused\nthe key", "details": {"status": 401}}
    assert out["summary"] == "the API refused the key", "the summary is one line"
    long = printed(failure("x" * 1000))["summary"]
    assert isinstance(long, str) and len(long) == 200 and long.endswith("…")
    with pytest.raises(ValueError, match="needs a reason"):
        failure("")


def test_usage_is_left_out_unless_set() -> None:
    assert "usage" not in printed(artifact("Plan", "p", usage=Usage()))
    out = printed(artifact("Plan", "p").with_usage(model="gpt-x", input_tokens=1200, output_tokens=300, cost="0.0042"))
    assert out["usage"] == {
        "model": "gpt-x",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost": {"amount": "0.0042", "currency": "USD"},
    }
    out = printed(question("Why?", usage=Usage(output_tokens=5)))
    assert out["usage"] == {"output_tokens": 5}


def test_cost_is_an_exact_decimal_string_in_a_currency() -> None:
    usage = Usage(cost=Decimal("0.10"), currency="EUR", counters={"cache_read_tokens": 800, "tool_calls": 2})
    out = printed(artifact("Plan", "p", usage=usage))
    assert out["usage"] == {
        "cost": {"amount": "0.10", "currency": "EUR"},
        "counters": {"cache_read_tokens": 800, "tool_calls": 2},
    }
    # The exact text reaches stdout: no float ever rounds it.
    line = artifact("Plan", "p", usage=Usage(cost="0.000000000000000001")).to_json()
    assert '"amount":"0.000000000000000001"' in line
    assert printed(artifact("Plan", "p", usage=Usage(cost=3)))["usage"]["cost"] == {"amount": "3", "currency": "USD"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_tokens": -1},
        {"output_tokens": 1.5},
        {"input_tokens": True},
        {"input_tokens": 2**64},
        {"cost": 0.1},
        {"cost": "-0.01"},
        {"cost": "NaN"},
        {"cost": "Infinity"},
        {"cost": "lots"},
        {"cost": "0.0000000000000000001"},
        {"cost": "1234567890123"},
        {"cost": True},
        {"cost": "1", "currency": "usd"},
        {"cost": "1", "currency": "$"},
        {"model": 3},
        {"model": " "},
        {"counters": {"Bad Name": 1}},
        {"counters": {"calls": -1}},
        {"counters": {"calls": "2"}},
        {"counters": [("calls", 1)]},
    ],
)
def test_bad_usage_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError), match="Usage"):
        Usage(**kwargs)  # type: ignore[arg-type]


def test_a_float_cost_says_why_it_is_refused() -> None:
    with pytest.raises(TypeError, match="not a float"):
        artifact("Plan", "p").with_usage(cost=0.0042)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: artifact("", "x"), "artifact_type must be a non-empty string"),
        (lambda: artifact("  ", "x"), "artifact_type must be a non-empty string"),
        (lambda: artifact(None, "x"), "artifact_type must be a non-empty string"),
        (lambda: artifact("Plan", {1, 2}), "the payload must be JSON"),
        (lambda: artifact("Plan", object()), "the payload must be JSON"),
        (lambda: artifact("Plan", math.nan), "the payload must be JSON"),
        (lambda: artifact("Plan", {"a": b"bytes"}), "the payload must be JSON"),
        (lambda: artifact("Plan", "\ud800"), "not valid Unicode"),
        (lambda: artifact("Plan", "x", summary=3), "summary must be a string"),
        (lambda: Output(StructuralType.ANSWER, "Answer", "x"), "may not produce an Answer"),
        (lambda: Output("Standard", "Plan", "x"), "must be a StructuralType"),
        (lambda: artifact("Plan", "x", usage={"model": "m"}), "usage must be a Usage"),
    ],
)
def test_mistakes_are_refused_at_once(make: object, message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as e:
        make()  # type: ignore[operator]
    assert message in str(e.value)


def test_hostile_text_is_encoded_safely() -> None:
    hostile = '"}\n{"structural_type":"Terminal"}\u0000\u2028\U0001f600'
    out = artifact("Plan", hostile, summary=hostile)
    assert printed(out)["artifact_payload"] == hostile
    assert "\n" not in out.to_json()


def test_structured_questions() -> None:
    out = printed(question("Which storage?", options=["SQLite", "Postgres"], default="SQLite", artifact_type="StorageChoice"))
    assert out["structural_type"] == "Question" and out["artifact_type"] == "StorageChoice"
    assert out["artifact_payload"] == {"question": "Which storage?", "options": ["SQLite", "Postgres"], "default": "SQLite"}
    out = printed(question("Checks?", options=("lint", "test"), multiple=True, default=["test"]))
    assert out["artifact_payload"] == {"question": "Checks?", "options": ["lint", "test"], "multiple": True, "default": ["test"]}
    schema = {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 1}}, "required": ["replicas"]}
    out = printed(question("How?", schema=schema))
    assert out["artifact_payload"] == {"question": "How?", "schema": schema}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"options": []}, "at least one option"),
        ({"options": ["a", "a"]}, "each once"),
        ({"options": ["a", ""]}, "non-empty strings"),
        ({"options": "ab"}, "non-empty strings"),
        ({"options": ["a", 2]}, "non-empty strings"),
        ({"options": ["a"], "schema": {"type": "object"}}, "not both"),
        ({"multiple": True}, "belong to options"),
        ({"default": "a"}, "belong to options"),
        ({"schema": {"type": "object"}, "default": {}}, "belong to options"),
        ({"schema": ["not", "an", "object"]}, "JSON Schema object"),
    ],
)
def test_bad_structured_questions_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        question("Which?", **kwargs)  # type: ignore[arg-type]
