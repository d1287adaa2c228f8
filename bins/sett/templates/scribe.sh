#!/usr/bin/env bash
# Example Sett agent. It reads the tool contract's JSON on stdin, records the goal in
# notes/<claim>.md as a git commit, and ends the workflow with a Terminal artifact whose payload
# is that commit. Replace the middle part with your own tool (an LLM call, a build, a test run).
set -euo pipefail
input=$(cat)
goal=$(jq -r '.target_artifact.payload' <<<"$input")
claim=$(jq -r '.claim_id' <<<"$input")
mkdir -p notes
file="notes/${claim:0:8}.md"
printf '# Goal\n\n%s\n' "$goal" >"$file"
git add "$file" >&2
git -c user.name="Sett Scribe" -c user.email="scribe@sett.invalid" commit -q -m "Scribe: record goal ${claim:0:8}" >&2
commit=$(git rev-parse HEAD)
jq -n --arg commit "$commit" --arg file "$file" \
  '{structural_type: "Terminal", artifact_type: "GoalRecorded", artifact_payload: $commit,
    summary: ("recorded the goal in " + $file)}'
