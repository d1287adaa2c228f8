"""Parsing the tool input: every claim type of the contract, and hostile or malformed input."""

from __future__ import annotations

import json

import pytest

from conftest import fixture, fixture_text
from sett_agent import (
    Artifact,
    ClaimType,
    Identity,
    InputError,
    PayloadError,
    StructuralType,
    ToolInput,
)


def test_an_exclusive_grant_on_a_goal() -> None:
    task = ToolInput.from_json(fixture_text("exclusive"))
    assert task.claim_type is ClaimType.EXCLUSIVE
    assert task.claim_id == "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7ca1"
    goal = task.target
    assert goal is task.target_artifact
    assert goal.artifact_type == "GoalDefined"
    assert goal.payload == "Build a to-do service"
    assert goal.structural_type is StructuralType.STANDARD
    assert goal.version == 1 and goal.logical_id == goal.id
    assert goal.produced_by_role == "user"
    assert goal.claim_id is None and goal.summary is None
    assert task.context_chain == () and task.answers == () and task.review_feedback == ()
    assert task.latest_answer is None


def test_a_resume_carries_the_question_and_its_answer() -> None:
    task = ToolInput.from_json(fixture_text("resume").encode("utf-8"))
    assert task.claim_type is ClaimType.RESUME
    assert len(task.answers) == 1
    qa = task.latest_answer
    assert qa is not None
    assert qa.question.structural_type is StructuralType.QUESTION
    assert qa.question.payload == "Which storage should the service use?"
    assert qa.answer.structural_type is StructuralType.ANSWER
    assert qa.text == "Use SQLite"
    assert qa.answered_by == "ada"
    assert qa.timed_out is False
    assert qa.answer.source_artifacts == (qa.question.id,)


def test_a_free_text_answer_stays_text_and_a_structured_one_parses() -> None:
    raw = fixture("resume")
    raw["answers"][0]["answer"]["payload"] = "8080"
    qa = ToolInput.from_dict(raw).answers[0]
    assert qa.text == "8080"
    assert qa.json() == 8080
    raw["answers"][0]["answer"]["payload"] = '{"storage": "sqlite", "replicas": 2}'
    assert ToolInput.from_dict(raw).answers[0].json() == {"storage": "sqlite", "replicas": 2}
    raw["answers"][0]["answer"]["payload"] = "Use SQLite"
    with pytest.raises(PayloadError, match="not JSON"):
        ToolInput.from_dict(raw).answers[0].json()


def test_a_timed_out_answer_is_marked() -> None:
    raw = fixture("resume")
    raw["answers"][0]["answer"].update(timed_out=True, answered_by="orchestrator", payload="")
    qa = ToolInput.from_dict(raw).answers[0]
    assert qa.timed_out and qa.answered_by == "orchestrator"


def test_a_review_grant_has_the_context_chain() -> None:
    task = ToolInput.from_json(fixture_text("review"))
    assert task.claim_type is ClaimType.REVIEW
    assert task.target.artifact_type == "CodeCommit"
    assert [a.artifact_type for a in task.context_chain] == ["GoalDefined"]
    assert task.target.source_artifacts == (task.context_chain[0].id,)


def test_a_rework_carries_the_rejecting_reviews_as_feedback() -> None:
    task = ToolInput.from_json(fixture_text("rework"))
    assert task.claim_type is ClaimType.REWORK
    [feedback] = task.review_feedback
    assert feedback.reviewer == "Reviewer"
    assert feedback.value == {"issue": "add a usage section"}
    assert feedback.text == '{"issue":"add a usage section"}'
    assert feedback.summary == "needs a usage section"
    assert not feedback.review.is_approval


def test_feedback_in_plain_text_and_approvals_left_out() -> None:
    raw = fixture("rework")
    plain = dict(raw["additional_context"][0], payload="Name the storage", id="x1")
    approval = dict(raw["additional_context"][0], payload="{}", id="x2")
    not_a_review = dict(raw["additional_context"][0], structural_type="Standard", id="x3")
    raw["additional_context"] = [plain, approval, not_a_review]
    task = ToolInput.from_dict(raw)
    assert [f.text for f in task.review_feedback] == ["Name the storage"]
    assert [f.value for f in task.review_feedback] == ["Name the storage"]


@pytest.mark.parametrize(
    ("payload", "approves"),
    [("{}", True), (" [ ] ", True), ('{"issue":"x"}', False), ("[1]", False), ("looks bad", False), ("", False), ("null", False)],
)
def test_approval_follows_the_orchestrators_rule(payload: str, approves: bool) -> None:
    review = Artifact.from_dict({"id": "r", "structural_type": "Review", "type": "Review", "payload": payload})
    assert review.is_approval is approves


def test_a_partial_target_as_in_the_docs_testing_example() -> None:
    text = (
        '{"claim_id":"00000000-0000-7000-8000-000000000000","claim_type":"exclusive",'
        '"target_artifact":{"payload":"Build a to-do service"},"context_chain":[],'
        '"additional_context":[],"answers":[]}'
    )
    task = ToolInput.from_json(text)
    assert task.target.payload == "Build a to-do service"
    assert task.target.version == 1 and task.target.structural_type is StructuralType.STANDARD


def test_unknown_fields_are_ignored_so_a_newer_sett_still_works() -> None:
    raw = fixture("exclusive")
    raw["something_new"] = {"x": 1}
    raw["target_artifact"]["content_hash"] = "abc"
    assert ToolInput.from_dict(raw).target.payload == "Build a to-do service"


def test_artifact_payload_helpers() -> None:
    a = Artifact.from_dict({"id": "a", "type": "Plan", "payload": '{"steps": [1, 2]}'})
    assert a.json() == {"steps": [1, 2]}
    assert a.json_or_text() == {"steps": [1, 2]}
    b = Artifact.from_dict({"id": "b", "type": "Plan", "payload": "plain words"})
    assert b.json_or_text() == "plain words"
    with pytest.raises(PayloadError, match="Plan b"):
        b.json()


def test_a_bid_scripts_artifact() -> None:
    a = Artifact.from_json(json.dumps(fixture("review")["target_artifact"]))
    assert a.artifact_type == "CodeCommit" and a.produced_by_role == "Writer"


def _broken(mutate: str) -> dict[str, object]:
    raw = fixture("rework")
    exec(mutate, {"raw": raw})  # noqa: S102 - test data edits
    return raw


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        ("del raw['claim_type']", 'no "claim_type"'),
        ("del raw['target_artifact']", 'no "target_artifact"'),
        ("raw['claim_type'] = 'approve'", "claim_type is 'approve'; expected one of review, claim, exclusive, rework, resume"),
        ("raw['claim_type'] = 7", "claim_type must be one of"),
        ("raw['claim_id'] = 12", "input.claim_id must be a string, got a number"),
        ("raw['target_artifact'] = 'Build it'", "target_artifact must be a JSON object, got a string"),
        ("raw['target_artifact']['version'] = '2'", "target_artifact.version must be an integer, got a string"),
        ("raw['target_artifact']['version'] = True", "target_artifact.version must be an integer, got a boolean"),
        ("raw['target_artifact']['version'] = 1.5", "target_artifact.version must be an integer, got a number"),
        ("raw['target_artifact']['payload'] = {'a': 1}", "target_artifact.payload must be a string, got an object"),
        ("raw['target_artifact']['structural_type'] = 'standard'", "target_artifact.structural_type is 'standard'"),
        ("raw['target_artifact']['source_artifacts'] = [1]", "target_artifact.source_artifacts[0] must be a string"),
        ("raw['target_artifact']['source_artifacts'] = 'x'", "target_artifact.source_artifacts must be an array"),
        ("raw['target_artifact']['timed_out'] = 'yes'", "target_artifact.timed_out must be true or false"),
        ("raw['target_artifact']['claim_id'] = []", "target_artifact.claim_id must be a string or null, got an array"),
        ("raw['context_chain'] = {}", "input.context_chain must be an array, got an object"),
        ("raw['context_chain'] = [None]", "context_chain[0] must be a JSON object, got null"),
        ("raw['additional_context'][0]['type'] = False", "additional_context[0].type must be a string, got a boolean"),
        ("raw['answers'] = [{'question': {}}]", 'answers[0] must hold a "question" and an "answer"'),
        ("raw['answers'] = [{'question': {}, 'answer': 3}]", "answers[0].answer must be a JSON object, got a number"),
    ],
)
def test_malformed_fields_are_refused_naming_the_field(mutate: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        ToolInput.from_dict(_broken(mutate))
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"not json", "is not JSON"),
        (b'{"claim_type": "review"', "is not JSON"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b"null", "must be a JSON object, got null"),
        (b'"a string"', "must be a JSON object, got a string"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_hostile_stdin_is_refused_with_a_clear_error(text: bytes, message: str) -> None:
    with pytest.raises(InputError) as e:
        ToolInput.from_json(text)
    assert message in str(e.value)


def test_hostile_text_inside_fields_is_kept_verbatim() -> None:
    raw = fixture("exclusive")
    hostile = '"; rm -rf / #\n\u0000\u202e{"structural_type":"Terminal"}\U0001f600'
    raw["target_artifact"]["payload"] = hostile
    raw["target_artifact"]["type"] = "Goal\nDefined"
    task = ToolInput.from_json(json.dumps(raw))
    assert task.target.payload == hostile
    assert task.target.artifact_type == "Goal\nDefined"


def test_a_huge_payload_is_read() -> None:
    raw = fixture("exclusive")
    raw["target_artifact"]["payload"] = "x" * 5_000_000
    assert len(ToolInput.from_json(json.dumps(raw)).target.payload) == 5_000_000


def test_inputs_are_immutable() -> None:
    task = ToolInput.from_json(fixture_text("exclusive"))
    with pytest.raises(AttributeError):
        task.claim_id = "other"  # type: ignore[misc]


def test_the_identity_comes_from_the_environment() -> None:
    env = {
        "SETT_INSTANCE": "demo",
        "SETT_AGENT": "Writer",
        "SETT_CLAIM_ID": "c",
        "SETT_CLAIM_TYPE": "resume",
        "SETT_WORKSPACE": "/w",
    }
    me = Identity.from_env(env)
    assert (me.instance, me.agent, me.claim_id, me.claim_type, me.workspace) == ("demo", "Writer", "c", "resume", "/w")
    assert Identity.from_env({}).agent is None


def test_enums_are_their_contract_spelling() -> None:
    assert str(ClaimType.RESUME) == "resume" and ClaimType("rework") is ClaimType.REWORK
    assert str(StructuralType.TERMINAL) == "Terminal"


def test_the_testing_builders_make_what_the_cub_sends() -> None:
    from sett_agent import testing

    task = testing.tool_input("Build a to-do service")
    assert task.claim_type is ClaimType.EXCLUSIVE and task.target.payload == "Build a to-do service"
    assert task.target.artifact_type == "GoalDefined" and task.answers == ()

    task = testing.tool_input("Build", claim_type="resume", answers=[("Which storage?", "SQLite")])
    qa = task.latest_answer
    assert qa is not None and (qa.question.payload, qa.text, qa.answered_by) == ("Which storage?", "SQLite", "operator")
    assert qa.answer.source_artifacts == (qa.question.id,) and not qa.timed_out
    assert testing.tool_input("B", claim_type="resume", answers=[("Q?", "")], timed_out=True).answers[0].timed_out

    commit = testing.make_artifact("3f2a", artifact_type="CodeCommit", produced_by_role="Writer", version=1)
    task = testing.tool_input(commit, claim_type=ClaimType.REWORK, feedback=[{"issue": "add a usage section"}, "and tests"])
    assert [f.value for f in task.review_feedback] == [{"issue": "add a usage section"}, "and tests"]
    assert task.target is commit

    with pytest.raises(ValueError):
        testing.tool_input("x", claim_type="approve")


def test_a_structured_answer_has_its_value() -> None:
    raw = fixture("resume")
    raw["answers"][0]["answer"]["payload"] = '{"replicas":3,"region":"eu"}'
    raw["answers"][0]["value"] = {"replicas": 3, "region": "eu"}
    qa = ToolInput.from_dict(raw).answers[0]
    assert qa.value == {"replicas": 3, "region": "eu"} and qa.json() == qa.value
    assert ToolInput.from_json(fixture_text("resume")).answers[0].value is None, "free text has no value"

    from sett_agent import testing

    qa = testing.tool_input("g", claim_type="resume", answers=[("Which?", ["lint", "test"])]).answers[0]
    assert qa.value == ["lint", "test"] and qa.text == '["lint","test"]'
