#!/usr/bin/env python3
"""Reviewer: rejects the first version of a commit with feedback, approves later versions; the
Python twin of examples/agents/reviewer/run.sh."""

import sett_agent as sett
from sett_agent import Output, ToolInput


def handle(task: ToolInput) -> Output:
    if task.target.version < 2:
        return sett.request_changes({"issue": "add a usage section"}, summary="needs a usage section")
    return sett.approve()


if __name__ == "__main__":
    sett.run(handle)
