"""What an agent returns: one `Output` (the tool contract's stdout object), made by `artifact()`,
`terminal()`, `approve()`, `request_changes()`, `question()` or `failure()`, optionally with the
`Usage` of the run. Every constructor checks its arguments at once, so a mistake is raised inside
the handler (where `run()` reports it as a Failure) instead of being refused later by the cub."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from ._input import JSON, StructuralType

_SUMMARY_LIMIT = 200
"""How much of a reason `failure()` copies into a default summary (one line in `sett hoard`)."""


@dataclass(frozen=True)
class Usage:
    """What the run cost: the model used, its tokens, their price in US dollars. Optional; only
    the fields that are set are written. Sett validates these fields and does not record them
    yet (docs/agents.md, "Usage")."""

    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    def __post_init__(self) -> None:
        if self.model is not None and not isinstance(self.model, str):
            raise TypeError(f"Usage.model must be a string, got {type(self.model).__name__}")
        for name in ("input_tokens", "output_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"Usage.{name} must be a non-negative integer, got {value!r}")
        cost = self.cost_usd
        if cost is not None:
            if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0:
                raise ValueError(f"Usage.cost_usd must be a non-negative number of dollars, got {cost!r}")

    def to_dict(self) -> dict[str, JSON]:
        """The fields that are set."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


def _check_json(value: object, what: str) -> None:
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} is not valid Unicode text (a lone surrogate?): {e}") from None
    except (TypeError, ValueError, RecursionError) as e:
        raise TypeError(f"{what} must be JSON (str, int, float, bool, None, list, dict with str keys): {e}") from None


@dataclass(frozen=True)
class Output:
    """The one object a tool prints on stdout. Prefer the constructors (`artifact()`, `approve()`,
    ...), which choose the structural type for you."""

    structural_type: StructuralType
    artifact_type: str
    payload: JSON = None
    """A string is stored as is; any other JSON value is stored as its JSON text."""
    summary: str | None = None
    """One line, shown by `sett hoard` and `sett watch`."""
    usage: Usage | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.structural_type, StructuralType):
            raise TypeError(f"structural_type must be a StructuralType, got {self.structural_type!r}")
        if self.structural_type is StructuralType.ANSWER:
            raise ValueError("a tool may not produce an Answer; answers come from humans (`sett answer`)")
        if not isinstance(self.artifact_type, str) or not self.artifact_type.strip():
            raise ValueError(f"artifact_type must be a non-empty string, got {self.artifact_type!r}")
        if self.summary is not None and not isinstance(self.summary, str):
            raise TypeError(f"summary must be a string or None, got {type(self.summary).__name__}")
        if self.usage is not None and not isinstance(self.usage, Usage):
            raise TypeError(f"usage must be a Usage, got {type(self.usage).__name__}")
        _check_json(self.payload, "the payload")
        _check_json(self.artifact_type, "artifact_type")
        _check_json(self.summary, "the summary")

    def with_usage(
        self,
        usage: Usage | None = None,
        *,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
    ) -> Output:
        """This output reporting `usage` (or a Usage made of the keyword arguments)."""
        if usage is None:
            usage = Usage(model=model, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost_usd)
        return dataclasses.replace(self, usage=usage)

    def to_dict(self) -> dict[str, JSON]:
        """The contract's stdout object. `summary` and `usage` appear only when set."""
        out: dict[str, JSON] = {
            "structural_type": self.structural_type.value,
            "artifact_type": self.artifact_type,
            "artifact_payload": self.payload,
        }
        if self.summary:
            out["summary"] = self.summary
        usage = self.usage.to_dict() if self.usage is not None else {}
        if usage:
            out["usage"] = usage
        return out

    def to_json(self) -> str:
        """One line of JSON, as the tool prints it."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def artifact(artifact_type: str, payload: JSON, *, summary: str | None = None, usage: Usage | None = None) -> Output:
    """A work product (`Standard`): it gets a claim of its own, so the next agents pick it up.
    A `CodeCommit` payload must name a commit that exists in the workspace. On `rework` it
    becomes the next version of the rejected artifact's thread."""
    return Output(StructuralType.STANDARD, artifact_type, payload, summary, usage)


def terminal(artifact_type: str, payload: JSON, *, summary: str | None = None, usage: Usage | None = None) -> Output:
    """The workflow is done (`Terminal`)."""
    return Output(StructuralType.TERMINAL, artifact_type, payload, summary, usage)


def approve(summary: str | None = "approved", *, usage: Usage | None = None) -> Output:
    """A review that approves the target (payload `{}`)."""
    return Output(StructuralType.REVIEW, "Review", {}, summary, usage)


def request_changes(feedback: JSON, *, summary: str | None = None, usage: Usage | None = None) -> Output:
    """A review that rejects the target: `feedback` (text, or JSON such as `{"issue": "..."}`)
    reaches the author on `rework`. Empty feedback is refused: `{}` and `[]` would approve."""
    empty = feedback is None or (isinstance(feedback, (str, dict, list)) and not feedback)
    if isinstance(feedback, str) and not empty:
        stripped = feedback.strip()
        empty = not stripped or stripped.replace(" ", "") in ("{}", "[]")
    if empty:
        raise ValueError(
            f"request_changes() needs feedback saying what to change, got {feedback!r} "
            "(an empty object or array would approve; use approve() for that)"
        )
    return Output(StructuralType.REVIEW, "Review", feedback, summary, usage)


def question(
    text: str,
    *,
    options: Sequence[str] | None = None,
    multiple: bool = False,
    default: JSON = None,
    schema: Mapping[str, JSON] | None = None,
    artifact_type: str = "Clarification",
    summary: str | None = None,
    usage: Usage | None = None,
) -> Output:
    """Ask a human (`Question`): the claim waits until `sett answer`, then this agent is granted
    again with `claim_type` `resume` and the answer in `ToolInput.answers`.

    A structured question says what answer it wants: `options` (one of them, or several with
    `multiple=True`; `default` preselects an option, or a list of options) or `schema` (a form:
    a JSON Schema object of the subset docs/agents.md lists). The resumed agent then reads
    `QuestionAnswer.value`. Sett checks the spec; an invalid one fails the run with every
    problem listed."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"question() needs the question's text, got {text!r}")
    if options is None and schema is None:
        if multiple or default is not None:
            raise ValueError("question(): multiple and default belong to options")
        return Output(StructuralType.QUESTION, artifact_type, text, summary, usage)
    if options is not None and schema is not None:
        raise ValueError("question(): give either options or schema, not both")
    payload: dict[str, JSON] = {"question": text}
    if options is not None:
        if isinstance(options, str) or not all(isinstance(o, str) and o.strip() for o in options):
            raise ValueError(f"question(): options must be a list of non-empty strings, got {options!r}")
        if not options or len(set(options)) != len(options):
            raise ValueError(f"question(): options must list at least one option, each once, got {list(options)!r}")
        payload["options"] = list(options)
        if multiple:
            payload["multiple"] = True
        if default is not None:
            payload["default"] = default
    else:
        if multiple or default is not None:
            raise ValueError("question(): multiple and default belong to options; a schema's defaults go on its properties")
        if not isinstance(schema, Mapping):
            raise ValueError(f"question(): schema must be a JSON Schema object, got {schema!r}")
        payload["schema"] = dict(schema)
    return Output(StructuralType.QUESTION, artifact_type, payload, summary, usage)


def failure(
    reason: str,
    *,
    artifact_type: str = "AgentFailure",
    details: JSON = None,
    summary: str | None = None,
    usage: Usage | None = None,
) -> Output:
    """Give up (`Failure`): the claim is terminated and this artifact says why. The payload is
    `reason`, or `{"reason": ..., "details": ...}` with `details`."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"failure() needs a reason, got {reason!r}")
    payload: JSON = reason if details is None else {"reason": reason, "details": details}
    if summary is None:
        summary = _one_line(reason)
    return Output(StructuralType.FAILURE, artifact_type, payload, summary, usage)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _SUMMARY_LIMIT else line[: _SUMMARY_LIMIT - 1] + "…"
