#!/usr/bin/env bash
# Runs every benchmark behind `./dev bench`. $1: the directory holding the binaries.
set -euo pipefail
BIN="$1"
echo "== scale: master memory per pending shard, journal replay"
"$BIN/scale_bench" --bin "$BIN"
