#!/usr/bin/env bash
# Runs every benchmark behind `./dev bench` (about 10 minutes on 2 cores).
# $1: the directory holding the binaries. Each program prints a table and, as
# its last line, one JSON line with all its figures.
set -euo pipefail
BIN="$(cd "$1" && pwd)"
section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

section "core: coordinator cost per shard at 1k/1M/10M pending shards (Google Benchmark)"
"$BIN/core_bench" --benchmark_min_time=0.5 --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true
section "scale: master memory per pending shard, journal replay and restart"
"$BIN/scale_bench" --bin "$BIN"
section "flood: master RSS before/after a registration flood with big fields"
"$BIN/flood_bench" --bin "$BIN"
section "dispatch: a real master vs a bare gRPC echo server on loopback"
"$BIN/dispatch_bench" --bin "$BIN" --seconds 3
section "recovery: SIGKILL to re-acquire, time to first shard, 1,000 heartbeating workers"
"$BIN/recovery_bench" --bin "$BIN" --repeat 5
section "startup: first commit with a slow-loading --persistent command, loaded at start vs at the first record"
"$BIN/startup_bench" --bin "$BIN" --repeat 3
section "makespan: heterogeneous workers, a kill, a slow starter, a 10x straggler vs ideal and static"
"$BIN/makespan_bench" --bin "$BIN"
