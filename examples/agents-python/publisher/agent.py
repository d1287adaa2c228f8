#!/usr/bin/env python3
"""Publisher: a controller agent whose grants run in ephemeral workers; ends the workflow with a
Terminal artifact naming the published commit. The Python twin of
examples/agents/publisher/run.sh."""

import sett_agent as sett
from sett_agent import Output, ToolInput


def handle(task: ToolInput) -> Output:
    commit = task.target.payload.strip()
    return sett.terminal("Published", commit, summary=f"published {commit[:8]}")


if __name__ == "__main__":
    sett.run(handle)
