"""What an agent returns: one `Output` (the tool contract's stdout object), made by `artifact()`,
`terminal()`, `approve()`, `request_changes()`, `question()` or `failure()`, optionally with the
`Usage` of the run. Every constructor checks its arguments at once, so a mistake is raised inside
the handler (where `run()` reports it as a Failure) instead of being refused later by the cub."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Mapping, Sequence

from ._input import JSON, StructuralType

_SUMMARY_LIMIT = 200
"""How much of a reason `failure()` copies into a default summary (one line in `sett hoard`)."""


_AMOUNT_INTEGER_DIGITS = 12
_AMOUNT_FRACTION_DIGITS = 18
_COUNTERS_MAX = 32
_COUNTER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CURRENCY = re.compile(r"[A-Z][A-Z0-9]{2,7}")
_MODEL_MAX = 200


@dataclass(frozen=True)
class Usage:
    """What the run cost: the model used, its tokens, the cost as an exact decimal in a currency,
    and any other counters. Optional; only the fields that are set are written. Sett stores it
    with the artifact (covered by the ledger) and sums it in `sett usage`, the metrics and the
    budgets (docs/agents.md, "Usage").

    `cost` is a `decimal.Decimal` or a decimal string such as `"0.0042"`, never a float (a float
    loses cents); it is printed as a string. `currency` is a code such as `"USD"` (the default)."""

    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: Decimal | str | None = None
    currency: str = "USD"
    counters: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model is not None:
            if not isinstance(self.model, str):
                raise TypeError(f"Usage.model must be a string, got {type(self.model).__name__}")
            if not self.model.strip() or len(self.model) > _MODEL_MAX:
                raise ValueError(f"Usage.model must be a non-empty string of at most {_MODEL_MAX} characters")
        for name in ("input_tokens", "output_tokens"):
            _check_count(f"Usage.{name}", getattr(self, name))
        if self.cost is not None:
            object.__setattr__(self, "cost", _amount(self.cost))
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise ValueError(
                f"Usage.currency must be a code of 3 to 8 upper-case letters or digits (\"USD\"), got {self.currency!r}"
            )
        if not isinstance(self.counters, Mapping):
            raise TypeError(f"Usage.counters must be a mapping of names to integers, got {type(self.counters).__name__}")
        if len(self.counters) > _COUNTERS_MAX:
            raise ValueError(f"Usage.counters may hold at most {_COUNTERS_MAX} counters")
        for name, value in self.counters.items():
            if not isinstance(name, str) or not _COUNTER_NAME.fullmatch(name):
                raise ValueError(
                    f"Usage.counters: {name!r} is not a counter name (a lower-case letter, then lower-case letters, digits or '_')"
                )
            _check_count(f"Usage.counters[{name!r}]", value)
        object.__setattr__(self, "counters", dict(self.counters))

    def to_dict(self) -> dict[str, JSON]:
        """The contract's `usage` object: the fields that are set."""
        out: dict[str, JSON] = {}
        if self.model is not None:
            out["model"] = self.model
        if self.input_tokens is not None:
            out["input_tokens"] = self.input_tokens
        if self.output_tokens is not None:
            out["output_tokens"] = self.output_tokens
        if self.cost is not None:
            assert isinstance(self.cost, Decimal)
            out["cost"] = {"amount": format(self.cost, "f"), "currency": self.currency}
        if self.counters:
            out["counters"] = dict(self.counters)
        return out


def _check_count(what: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 2**64):
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")


def _amount(value: object) -> Decimal:
    """A cost as an exact, non-negative Decimal of at most 12 integer and 18 fraction digits."""
    if isinstance(value, float):
        raise TypeError(
            f"Usage.cost must be a Decimal or a decimal string such as \"0.0042\", not a float ({value!r} loses cents)"
        )
    if isinstance(value, bool) or not isinstance(value, (Decimal, str, int)):
        raise TypeError(f"Usage.cost must be a Decimal or a decimal string, got {type(value).__name__}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"Usage.cost must be a decimal such as \"0.0042\", got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"Usage.cost must be a finite, non-negative decimal, got {value!r}")
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    fraction = max(0, -exponent)
    integer = max(0, len(digits) + exponent)
    if fraction > _AMOUNT_FRACTION_DIGITS or integer > _AMOUNT_INTEGER_DIGITS:
        raise ValueError(
            f"Usage.cost must have at most {_AMOUNT_INTEGER_DIGITS} integer and {_AMOUNT_FRACTION_DIGITS} fraction digits, got {value!r}"
        )
    return amount


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
        cost: Decimal | str | None = None,
        currency: str = "USD",
        counters: Mapping[str, int] | None = None,
    ) -> Output:
        """This output reporting `usage` (or a Usage made of the keyword arguments)."""
        if usage is None:
            usage = Usage(
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost=cost,
                currency=currency,
                counters=counters or {},
            )
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
