"""`sett.traceparent()`: the workflow's trace context the cub hands a tool run."""

from __future__ import annotations

import sett_agent as sett

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_valid_traceparent_is_parsed() -> None:
    tp = sett.traceparent({"TRACEPARENT": f"00-{TRACE}-{SPAN}-01"})
    assert tp == sett.TraceParent(trace_id=TRACE, span_id=SPAN, sampled=True, header=f"00-{TRACE}-{SPAN}-01")


def test_no_traceparent_when_traces_are_off() -> None:
    assert sett.traceparent({}) is None
    assert sett.traceparent({"TRACEPARENT": ""}) is None


def test_an_invalid_traceparent_is_ignored() -> None:
    for bad in [
        f"01-{TRACE}-{SPAN}-01",  # unknown version
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper case
        f"00-{TRACE}-{SPAN}",  # no flags
    ]:
        assert sett.traceparent({"TRACEPARENT": bad}) is None, bad


def test_the_sampled_flag_is_read() -> None:
    tp = sett.traceparent({"TRACEPARENT": f"00-{TRACE}-{SPAN}-00"})
    assert tp is not None and not tp.sampled
