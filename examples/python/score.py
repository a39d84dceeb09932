#!/usr/bin/env python3
"""Scores review texts with a small sentiment lexicon: JSONL in, JSONL out.

A worker in any language: run it through ebatch-worker, which hands it one
shard's records on stdin and commits its stdout exactly once.

    ebatch-worker -- python3 score.py                  # one process per shard
    ebatch-worker --persistent -- python3 -u score.py  # one process, line by line

With --persistent, ebatch-worker numbers every record ("<n>\\t<record>") and
wants the number back in front of its answer, so that no answer can ever land
in another record's place; EBATCH_FRAMING says whether lines are numbered.
Hyperparameters come from the platform's environment, e.g. PAI_HPS_BIAS.
"""
import json
import os
import sys

POSITIVE = {"good", "great", "excellent", "love", "perfect", "fast", "reliable",
            "happy", "helpful", "recommend", "value"}
NEGATIVE = {"bad", "poor", "terrible", "hate", "broken", "slow", "refund",
            "disappointed", "rude", "late", "never"}


def score(record, bias, shard):
    words = record["text"].lower().split()
    value = bias + sum((w in POSITIVE) - (w in NEGATIVE) for w in words)
    label = "positive" if value > 0 else "negative" if value < 0 else "neutral"
    return json.dumps({"id": record["id"], "sentiment": value, "label": label,
                       "shard": shard})


def main():
    bias = float(os.environ.get("PAI_HPS_BIAS", "0"))
    shard = os.environ.get("SHARD_ID", "?")
    numbered = os.environ.get("EBATCH_FRAMING") == "index"
    for line in sys.stdin:
        number = ""
        if numbered:
            number, line = line.split("\t", 1)
            number += "\t"
        elif not line.strip():
            continue
        print(number + score(json.loads(line), bias, shard), flush=True)


if __name__ == "__main__":
    main()
