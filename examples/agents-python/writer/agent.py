#!/usr/bin/env python3
"""Writer: turns a goal into a plan committed to git (a CodeCommit artifact); the Python twin of
examples/agents/writer/run.sh.
- First grant on a goal: asks the operator which storage to use (a Question), unless
  ASK_QUESTION=no.
- Resumed with the answer: writes PLAN.md for the goal and that storage, commits it.
- Rework after a review: applies the reviewers' feedback to PLAN.md and commits again."""

import os
import subprocess
from pathlib import Path

import sett_agent as sett
from sett_agent import ClaimType, Output, ToolInput

PLAN = Path("PLAN.md")


def commit_plan(message: str) -> Output:
    subprocess.run(["git", "add", str(PLAN)], check=True)
    identity = ["-c", "user.name=Sett Writer", "-c", "user.email=writer@sett.invalid"]
    subprocess.run(["git", *identity, "commit", "-q", "-m", message], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return sett.artifact("CodeCommit", head, summary=message)


def feedback_text(feedback: sett.ReviewFeedback) -> str:
    value = feedback.value
    issue = value.get("issue") if isinstance(value, dict) else None
    return issue if isinstance(issue, str) else feedback.text


def handle(task: ToolInput) -> Output:
    if task.claim_type is ClaimType.REWORK:
        asked = "; ".join(feedback_text(f) for f in task.review_feedback)
        with PLAN.open("a", encoding="utf-8") as plan:
            plan.write(f"\n## Usage\n\nRun the service and open it in a browser (reviewer asked: {asked}).\n")
        return commit_plan("Writer: address review feedback")
    answer = task.latest_answer
    if answer is None and os.environ.get("ASK_QUESTION", "yes") == "yes":
        return sett.question("Which storage should the service use?")
    storage = answer.text if answer is not None and not answer.timed_out else "the default storage"
    PLAN.write_text(f"# Plan\n\nGoal: {task.target.payload}\n\nStorage: {storage}\n", encoding="utf-8")
    return commit_plan("Writer: plan for the goal")


if __name__ == "__main__":
    sett.run(handle)
