#!/usr/bin/env python3
"""Checker: runs in the parallel phase; verifies the commit exists and reports what it touched;
the Python twin of examples/agents/checker/run.sh. Its bid comes from bid.py."""

import subprocess

import sett_agent as sett
from sett_agent import Output, ToolInput


def handle(task: ToolInput) -> Output:
    commit = task.target.payload.strip()
    # A missing commit raises CalledProcessError: the SDK reports it as an AgentError Failure.
    subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], check=True)
    shown = subprocess.run(
        ["git", "show", "--name-only", "--format=", commit], check=True, capture_output=True, text=True
    )
    files = ",".join(line for line in shown.stdout.splitlines() if line)
    return sett.artifact("CheckReport", f"commit {commit} touches {files}", summary="commit checked")


if __name__ == "__main__":
    sett.run(handle)
