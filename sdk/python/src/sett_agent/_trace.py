"""The workflow's trace context: the cub gives each tool run `TRACEPARENT` (W3C trace context,
https://www.w3.org/TR/trace-context/) when OpenTelemetry traces are on, so that an agent's own
spans (its model calls) join the workflow's trace as children of the tool run."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class TraceParent:
    """A parsed `traceparent`: the trace to join and the span (the tool run) to parent on."""

    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits: the parent of the agent's spans."""
    sampled: bool
    header: str
    """The value as given, to pass on as a `traceparent` HTTP header (e.g. to a model API)."""

    @classmethod
    def parse(cls, value: str) -> TraceParent | None:
        """The trace context in `value`, or None when it is not a valid version-00 one (all-zero
        ids included): an invalid context is ignored, as the W3C spec says."""
        m = _TRACEPARENT.match(value.strip())
        if m is None:
            return None
        version, trace_id, span_id, flags = m.groups()
        if version != "00" or set(trace_id) == {"0"} or set(span_id) == {"0"}:
            return None
        return cls(trace_id=trace_id, span_id=span_id, sampled=bool(int(flags, 16) & 1), header=value.strip())


def traceparent(environ: Mapping[str, str] | None = None) -> TraceParent | None:
    """The workflow's trace context from `TRACEPARENT`, or None when traces are off (or the
    agent runs by hand)."""
    env = os.environ if environ is None else environ
    value = env.get("TRACEPARENT")
    return TraceParent.parse(value) if value else None
