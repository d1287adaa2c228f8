"""What an agent reads: the tool contract's stdin (docs/agents.md, "The tool contract") and a bid
script's artifact, parsed into frozen dataclasses. Parsing never trusts its input: a missing
optional field takes its default, a field of the wrong type or an unknown enum value raises
`InputError` naming the field and what was expected. Unknown extra fields are ignored, so an
agent keeps working when Sett adds fields."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, TypeVar, Union

JSON = Union[None, bool, int, float, str, list["JSON"], dict[str, "JSON"]]
"""Any JSON value."""


class _StrEnum(str, Enum):
    """An enum whose members are their contract spelling (`str(member)` is that spelling)."""

    def __str__(self) -> str:
        return str(self.value)


class ClaimType(_StrEnum):
    """What the tool is asked to do (`claim_type` on stdin)."""

    REVIEW = "review"
    """Judge the target in the review phase: return `approve()` or `request_changes(...)`."""
    CLAIM = "claim"
    """Work on the target in the parallel phase, alongside the other `claim` bidders."""
    EXCLUSIVE = "exclusive"
    """Work on the target alone, in the exclusive phase."""
    REWORK = "rework"
    """Fix the target, which a review rejected: `ToolInput.review_feedback` says why."""
    RESUME = "resume"
    """Your question was answered: `ToolInput.answers` holds the question/answer pairs."""


class StructuralType(_StrEnum):
    """What the orchestrator does with an artifact (docs/agents.md, "Structural type")."""

    STANDARD = "Standard"
    REVIEW = "Review"
    QUESTION = "Question"
    ANSWER = "Answer"
    FAILURE = "Failure"
    TERMINAL = "Terminal"


class InputError(ValueError):
    """The input does not follow the tool contract. The message names the field and what was
    expected; `run()` turns it into an `InvalidToolInput` Failure."""


_E = TypeVar("_E", bound=_StrEnum)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{path} must be a JSON object, got {_type_name(value)}")
    return value


def _str(o: Mapping[str, Any], key: str, path: str, default: str = "") -> str:
    value = o.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InputError(f"{path}.{key} must be a string, got {_type_name(value)}")
    return value


def _opt_str(o: Mapping[str, Any], key: str, path: str) -> str | None:
    value = o.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(f"{path}.{key} must be a string or null, got {_type_name(value)}")
    return value


def _int(o: Mapping[str, Any], key: str, path: str, default: int) -> int:
    value = o.get(key, default)
    if value is None:
        return default
    # bool is an int in Python, not in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{path}.{key} must be an integer, got {_type_name(value)}")
    return value


def _bool(o: Mapping[str, Any], key: str, path: str) -> bool:
    value = o.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError(f"{path}.{key} must be true or false, got {_type_name(value)}")
    return value


def _list(o: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = o.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{path}.{key} must be an array, got {_type_name(value)}")
    return value


def _enum(kind: type[_E], value: object, path: str) -> _E:
    expected = ", ".join(m.value for m in kind)
    if not isinstance(value, str):
        raise InputError(f"{path} must be one of {expected}, got {_type_name(value)}")
    try:
        return kind(value)
    except ValueError:
        raise InputError(
            f"{path} is {value[:80]!r}; expected one of {expected} "
            "(a newer Sett than this SDK? upgrade sett-agent)"
        ) from None


def _parse_json_text(text: str, what: str) -> JSON:
    try:
        value: JSON = json.loads(text)
    except ValueError as e:
        raise PayloadError(f"{what} is not JSON ({e}): {text[:80]!r}") from None
    return value


class PayloadError(ValueError):
    """A payload was read as JSON but is not JSON."""


@dataclass(frozen=True)
class Artifact:
    """One immutable artifact of the blackboard, as the cub hands it to a tool."""

    id: str
    logical_id: str
    version: int
    structural_type: StructuralType
    artifact_type: str
    """The artifact's `type` (e.g. `GoalDefined`, `CodeCommit`)."""
    payload: str
    """Always text: a JSON payload arrives as its JSON text (see `json()`)."""
    source_artifacts: tuple[str, ...] = ()
    produced_by_role: str = ""
    """An agent's name, `user`, `orchestrator` or `human:<operator>`."""
    claim_id: str | None = None
    created_at_ms: int = 0
    summary: str | None = None
    answered_by: str | None = None
    """For Answers: who answered (`orchestrator` when the question timed out)."""
    timed_out: bool = False
    """For Answers: true when nobody answered in time (`on_question_timeout: continue`)."""

    @classmethod
    def from_dict(cls, value: object, path: str = "artifact") -> Artifact:
        o = _object(value, path)
        artifact_id = _str(o, "id", path)
        sources = _list(o, "source_artifacts", path)
        for i, s in enumerate(sources):
            if not isinstance(s, str):
                raise InputError(f"{path}.source_artifacts[{i}] must be a string, got {_type_name(s)}")
        return cls(
            id=artifact_id,
            logical_id=_str(o, "logical_id", path, artifact_id),
            version=_int(o, "version", path, 1),
            structural_type=_enum(StructuralType, o.get("structural_type", "Standard"), f"{path}.structural_type"),
            artifact_type=_str(o, "type", path),
            payload=_str(o, "payload", path),
            source_artifacts=tuple(sources),
            produced_by_role=_str(o, "produced_by_role", path),
            claim_id=_opt_str(o, "claim_id", path),
            created_at_ms=_int(o, "created_at_ms", path, 0),
            summary=_opt_str(o, "summary", path),
            answered_by=_opt_str(o, "answered_by", path),
            timed_out=_bool(o, "timed_out", path),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Artifact:
        """Parses a bid script's stdin: one artifact as JSON."""
        return cls.from_dict(_load(text, "the artifact"), "artifact")

    def json(self) -> JSON:
        """The payload parsed as JSON; `PayloadError` when it is not JSON."""
        return _parse_json_text(self.payload, f"the payload of {self.artifact_type or 'the artifact'} {self.id}")

    def json_or_text(self) -> JSON:
        """The payload parsed as JSON when it is JSON, else the text itself."""
        try:
            value: JSON = json.loads(self.payload)
        except ValueError:
            return self.payload
        return value

    @property
    def is_approval(self) -> bool:
        """For a Review: true when it approves (payload `{}` or `[]`); any other payload vetoes."""
        try:
            value = json.loads(self.payload)
        except ValueError:
            return False
        return isinstance(value, (dict, list)) and len(value) == 0


@dataclass(frozen=True)
class QuestionAnswer:
    """A question the agent asked and the answer it got (on `resume`)."""

    question: Artifact
    answer: Artifact
    value: JSON = None
    """For a structured question: the answer as JSON (the chosen option, the list of options,
    or the form's object). None for a free-text answer, and for a timed-out one without a
    default."""

    @property
    def text(self) -> str:
        """The answer as the operator wrote it (for a structured question, its JSON text)."""
        return self.answer.payload

    def json(self) -> JSON:
        """The answer parsed as JSON; `PayloadError` when it is not JSON. A free-text answer is
        `text`: "8080" stays a string there."""
        return self.answer.json()

    @property
    def timed_out(self) -> bool:
        """True when nobody answered in time and the orchestrator resumed the agent anyway."""
        return self.answer.timed_out

    @property
    def answered_by(self) -> str | None:
        return self.answer.answered_by

    @classmethod
    def from_dict(cls, value: object, path: str) -> QuestionAnswer:
        o = _object(value, path)
        if "question" not in o or "answer" not in o:
            raise InputError(f"{path} must hold a \"question\" and an \"answer\" artifact")
        return cls(
            question=Artifact.from_dict(o["question"], f"{path}.question"),
            answer=Artifact.from_dict(o["answer"], f"{path}.answer"),
            value=o.get("value"),
        )


@dataclass(frozen=True)
class ReviewFeedback:
    """A review that rejected the target (on `rework`): who said what."""

    review: Artifact

    @property
    def reviewer(self) -> str:
        """The reviewing agent's name, or `human:<name>`."""
        return self.review.produced_by_role

    @property
    def value(self) -> JSON:
        """The feedback: the review's payload parsed as JSON when it is JSON, else its text."""
        return self.review.json_or_text()

    @property
    def text(self) -> str:
        """The feedback as one string: a text payload as is, JSON as compact JSON text."""
        value = self.value
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    @property
    def summary(self) -> str | None:
        return self.review.summary


@dataclass(frozen=True)
class ToolInput:
    """What the cub hands the tool on stdin for one grant."""

    claim_id: str
    claim_type: ClaimType
    target_artifact: Artifact
    context_chain: tuple[Artifact, ...] = ()
    """The target's provenance, oldest first (Standard, Review and Answer artifacts)."""
    additional_context: tuple[Artifact, ...] = ()
    """On `rework`: the reviews that rejected the target."""
    answers: tuple[QuestionAnswer, ...] = ()
    """On `resume`: every question this agent asked on this claim, with its answer, oldest first."""

    @classmethod
    def from_dict(cls, value: object) -> ToolInput:
        o = _object(value, "the tool input")
        if "claim_type" not in o:
            raise InputError("the tool input has no \"claim_type\"")
        if "target_artifact" not in o:
            raise InputError("the tool input has no \"target_artifact\"")
        return cls(
            claim_id=_str(o, "claim_id", "input"),
            claim_type=_enum(ClaimType, o["claim_type"], "claim_type"),
            target_artifact=Artifact.from_dict(o["target_artifact"], "target_artifact"),
            context_chain=tuple(
                Artifact.from_dict(a, f"context_chain[{i}]") for i, a in enumerate(_list(o, "context_chain", "input"))
            ),
            additional_context=tuple(
                Artifact.from_dict(a, f"additional_context[{i}]")
                for i, a in enumerate(_list(o, "additional_context", "input"))
            ),
            answers=tuple(
                QuestionAnswer.from_dict(qa, f"answers[{i}]") for i, qa in enumerate(_list(o, "answers", "input"))
            ),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ToolInput:
        """Parses the tool's stdin."""
        return cls.from_dict(_load(text, "the tool input"))

    @property
    def target(self) -> Artifact:
        """Shorthand for `target_artifact`."""
        return self.target_artifact

    @property
    def review_feedback(self) -> tuple[ReviewFeedback, ...]:
        """On `rework`: the rejecting reviews, from `additional_context`."""
        return tuple(
            ReviewFeedback(a)
            for a in self.additional_context
            if a.structural_type is StructuralType.REVIEW and not a.is_approval
        )

    @property
    def latest_answer(self) -> QuestionAnswer | None:
        """The most recent question/answer pair, if any."""
        return self.answers[-1] if self.answers else None


def _load(text: str | bytes, what: str) -> object:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{what} is not UTF-8: {e}") from None
    if not text.strip():
        raise InputError(f"{what} is empty; the cub writes one JSON object on stdin (docs/agents.md)")
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"{what} is nested too deeply to be read") from None
    except ValueError as e:
        raise InputError(f"{what} is not JSON: {e}") from None


@dataclass(frozen=True)
class Identity:
    """Who is running, from the `SETT_*` environment the cub sets (absent when run by hand)."""

    instance: str | None
    agent: str | None
    claim_id: str | None
    claim_type: str | None
    workspace: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Identity:
        env = os.environ if environ is None else environ
        return cls(
            instance=env.get("SETT_INSTANCE"),
            agent=env.get("SETT_AGENT"),
            claim_id=env.get("SETT_CLAIM_ID"),
            claim_type=env.get("SETT_CLAIM_TYPE"),
            workspace=env.get("SETT_WORKSPACE"),
        )
