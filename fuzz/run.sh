#!/usr/bin/env bash
# Runs the libFuzzer targets one after the other and reports, per target, the
# executions, coverage (cov/ft from libFuzzer's final line) and new corpus
# entries. A crash (or a broken invariant, or a leak) is a non-zero exit that
# names the target and the input that crashed it. Used by `./dev fuzz` and
# `./dev test`; see fuzz/README.md.
#
#   fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# New corpus entries are kept in BUILD_DIR/fuzz-corpus/<target>/ (the seeds in
# fuzz/corpus/ are read, never written); crashing inputs land in
# BUILD_DIR/fuzz-artifacts/<target>/.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_dir="$1"
seconds="$2"
shift 2
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=($(cd "$here/corpus" && ls))
fi

failed=()
printf '%-20s %10s %7s %7s %8s %6s\n' target execs cov ft corpus new >&2
for t in "${targets[@]}"; do
  bin="$build_dir/bin/${t}_fuzzer"
  corpus="$build_dir/fuzz-corpus/$t"
  artifacts="$build_dir/fuzz-artifacts/$t"
  log="$build_dir/fuzz-logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  before=$(find "$corpus" -type f | wc -l)
  # -timeout: one input taking this long is a hang, reported as a crash.
  "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=0 \
    -artifact_prefix="$artifacts/" "$corpus" "$here/corpus/$t" >"$log" 2>&1
  rc=$?
  after=$(find "$corpus" -type f | wc -l)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  [[ -n "$done_line" ]] || done_line=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1)
  execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$done_line")
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$done_line")
  size=$(sed -nE 's/.*corp: ([0-9]+)\/.*/\1/p' <<<"$done_line")
  printf '%-20s %10s %7s %7s %8s %6s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "${size:-?}" "$((after - before))" >&2
  if ((rc != 0)); then
    input=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -1)
    grep -E 'invariant failed|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' \
      "$log" | head -3 | sed 's/^/    /' >&2
    echo "fuzz: $t crashed (exit $rc) on ${input:-an input; see $log}" >&2
    echo "      reproduce: $bin ${input:-}" >&2
    failed+=("$t")
  fi
done
if ((${#failed[@]} > 0)); then
  echo "fuzz: ${#failed[@]} target(s) crashed: ${failed[*]} (logs in $build_dir/fuzz-logs/)" >&2
  exit 1
fi
