#!/usr/bin/env bash
# Checker: runs in the parallel phase; verifies the commit exists and reports what it touched.
set -euo pipefail
input=$(cat)
commit=$(jq -r '.target_artifact.payload' <<<"$input")
git cat-file -e "${commit}^{commit}"
files=$(git show --name-only --format= "$commit" | paste -sd, -)
jq -n --arg f "$files" --arg c "$commit" \
  '{artifact_type: "CheckReport", artifact_payload: ("commit " + $c + " touches " + $f), summary: "commit checked"}'
