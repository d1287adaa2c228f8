#!/usr/bin/env bash
# Writer: turns a goal into a plan committed to git (a CodeCommit artifact).
# - First grant on a goal: asks the operator which storage to use (a Question), unless
#   ASK_QUESTION=no.
# - Resumed with the answer: writes PLAN.md for the goal and that storage, commits it.
# - Rework after a review: applies the reviewers' feedback to PLAN.md and commits again.
set -euo pipefail
input=$(cat)
claim_type=$(jq -r '.claim_type' <<<"$input")
commit_plan() {
  git add PLAN.md >&2
  git -c user.name="Sett Writer" -c user.email="writer@sett.invalid" commit -q -m "$1" >&2
  jq -n --arg c "$(git rev-parse HEAD)" --arg s "$1" \
    '{artifact_type: "CodeCommit", artifact_payload: $c, summary: $s}'
}
if [ "$claim_type" = "rework" ]; then
  feedback=$(jq -r '[.additional_context[].payload | (fromjson? // .) | (.issue? // tostring)] | join("; ")' <<<"$input")
  printf '\n## Usage\n\nRun the service and open it in a browser (reviewer asked: %s).\n' "$feedback" >>PLAN.md
  commit_plan "Writer: address review feedback"
  exit 0
fi
goal=$(jq -r '.target_artifact.payload' <<<"$input")
answers=$(jq '.answers | length' <<<"$input")
if [ "$answers" = "0" ] && [ "${ASK_QUESTION:-yes}" = "yes" ]; then
  jq -n '{structural_type: "Question", artifact_type: "Clarification",
          artifact_payload: "Which storage should the service use?"}'
  exit 0
fi
storage=$(jq -r 'if (.answers | length) > 0 then .answers[-1].answer.payload else "the default storage" end' <<<"$input")
printf '# Plan\n\nGoal: %s\n\nStorage: %s\n' "$goal" "$storage" >PLAN.md
commit_plan "Writer: plan for the goal"
