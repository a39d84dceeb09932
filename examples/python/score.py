#!/usr/bin/env python3
"""Scores review texts with a small sentiment lexicon: JSONL in, JSONL out.

A worker in any language: run it through ebatch-worker, which hands it one
shard's records on stdin and commits its stdout exactly once.

    ebatch-worker -- python3 score.py                  # one process per shard
    ebatch-worker --persistent -- python3 -u score.py  # one process, line by line

Hyperparameters come from the platform's environment, e.g. PAI_HPS_BIAS.
"""
import json
import os
import sys

POSITIVE = {"good", "great", "excellent", "love", "perfect", "fast", "reliable",
            "happy", "helpful", "recommend", "value"}
NEGATIVE = {"bad", "poor", "terrible", "hate", "broken", "slow", "refund",
            "disappointed", "rude", "late", "never"}


def main():
    bias = float(os.environ.get("PAI_HPS_BIAS", "0"))
    shard = os.environ.get("SHARD_ID", "?")
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        words = record["text"].lower().split()
        score = bias + sum((w in POSITIVE) - (w in NEGATIVE) for w in words)
        print(json.dumps({"id": record["id"], "sentiment": score,
                          "label": "positive" if score > 0 else "negative" if score < 0
                          else "neutral", "shard": shard}), flush=True)


if __name__ == "__main__":
    main()
