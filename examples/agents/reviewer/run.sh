#!/usr/bin/env bash
# Reviewer: rejects the first version of a commit with feedback, approves later versions.
# A review payload of {} approves; any other JSON is feedback that vetoes.
set -euo pipefail
input=$(cat)
version=$(jq -r '.target_artifact.version' <<<"$input")
if [ "$version" -lt 2 ]; then
  jq -n '{artifact_type: "Review", artifact_payload: {issue: "add a usage section"},
          summary: "needs a usage section"}'
else
  jq -n '{artifact_type: "Review", artifact_payload: {}, summary: "approved"}'
fi
