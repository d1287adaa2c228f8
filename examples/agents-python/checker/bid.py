#!/usr/bin/env python3
"""Checker's bid script: joins the parallel phase of every commit, stays out of anything else
(what `bidding_strategy: {type: claim, target_types: ["CodeCommit"]}` says statically)."""

import sett_agent as sett
from sett_agent import Artifact, Bid


def decide(artifact: Artifact) -> Bid:
    return Bid.CLAIM if artifact.artifact_type == "CodeCommit" else Bid.IGNORE


if __name__ == "__main__":
    sett.run_bid(decide)
