#!/usr/bin/env bash
# Publisher: a controller agent. It only bids; each grant runs this script in an ephemeral
# worker (`sett-cub --execute-claim`), at most worker.max_concurrent at a time. It ends the
# workflow with a Terminal artifact naming the published commit.
set -euo pipefail
input=$(cat)
commit=$(jq -r '.target_artifact.payload' <<<"$input")
jq -n --arg c "$commit" \
  '{structural_type: "Terminal", artifact_type: "Published", artifact_payload: $c, summary: ("published " + $c[0:8])}'
