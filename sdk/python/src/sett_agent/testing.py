"""Building tool inputs for an agent's own unit tests, in the shape the cub sends: a grant on a
target, with its context, the answers of a resume or the rejecting reviews of a rework.

```python
from sett_agent import testing

task = testing.tool_input("Build a to-do service", claim_type="resume", answers=[("Which storage?", "SQLite")])
assert handle(task).payload == ...
```
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Iterable

from ._input import JSON, Artifact, ClaimType, QuestionAnswer, StructuralType, ToolInput


def _new_id() -> str:
    return str(uuid.uuid4())


def make_artifact(
    payload: JSON = "",
    *,
    artifact_type: str = "GoalDefined",
    structural_type: StructuralType = StructuralType.STANDARD,
    produced_by_role: str = "user",
    version: int = 1,
    summary: str | None = None,
    source_artifacts: Iterable[str] = (),
    created_at_ms: int = 0,
) -> Artifact:
    """An artifact; a payload that is not a string is stored as its JSON text, as Sett does."""
    artifact_id = _new_id()
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return Artifact(
        id=artifact_id,
        logical_id=artifact_id,
        version=version,
        structural_type=structural_type,
        artifact_type=artifact_type,
        payload=text,
        source_artifacts=tuple(source_artifacts),
        produced_by_role=produced_by_role,
        created_at_ms=created_at_ms,
        summary=summary,
    )


def tool_input(
    target: Artifact | JSON = "",
    *,
    claim_type: ClaimType | str = ClaimType.EXCLUSIVE,
    context_chain: Iterable[Artifact] = (),
    answers: Iterable[tuple[str, JSON]] = (),
    timed_out: bool = False,
    feedback: Iterable[JSON] = (),
    reviewer: str = "Reviewer",
) -> ToolInput:
    """A `ToolInput` on `target` (an Artifact, or the payload of a `GoalDefined` goal).
    `answers` are (question, answer) pairs, marked `timed_out` if asked: a text answer is free
    text, any other JSON a structured answer (its `value`); `feedback` are the payloads of
    rejecting reviews by `reviewer` (they land in `additional_context`)."""
    goal = target if isinstance(target, Artifact) else make_artifact(target)
    claim_id = _new_id()
    pairs: list[QuestionAnswer] = []
    for question_text, answer_text in answers:
        question = make_artifact(
            question_text,
            artifact_type="Clarification",
            structural_type=StructuralType.QUESTION,
            produced_by_role="Agent",
            source_artifacts=(goal.id,),
        )
        answer = dataclasses.replace(
            make_artifact(
                answer_text,
                artifact_type="Answer",
                structural_type=StructuralType.ANSWER,
                produced_by_role="orchestrator" if timed_out else "human:operator",
                source_artifacts=(question.id,),
            ),
            answered_by="orchestrator" if timed_out else "operator",
            timed_out=timed_out,
            claim_id=claim_id,
        )
        value = None if isinstance(answer_text, str) else answer_text
        pairs.append(QuestionAnswer(question=question, answer=answer, value=value))
    reviews = tuple(
        make_artifact(
            f,
            artifact_type="Review",
            structural_type=StructuralType.REVIEW,
            produced_by_role=reviewer,
            source_artifacts=(goal.id,),
        )
        for f in feedback
    )
    return ToolInput(
        claim_id=claim_id,
        claim_type=ClaimType(claim_type),
        target_artifact=goal,
        context_chain=tuple(context_chain),
        additional_context=reviews,
        answers=tuple(pairs),
    )
