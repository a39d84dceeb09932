#!/usr/bin/env bash
# The demo behind `./dev demo`: a real local ElasticBatch job. It generates
# sample reviews, then `aimaster run` starts a master and 4 workers running the
# C++ example classifier, shows live progress, and prints a per-worker summary.
# $1: the directory holding the built binaries.
set -euo pipefail
BIN="$(cd "$1" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${ELASTICBATCH_DEMO_DIR:-$(dirname "$BIN")/demo}"

if [[ ! -d "$DEMO/reviews" ]]; then
  "$BIN/gen-sample-data" --out "$DEMO/reviews" --files 16 --records 60000 --seed 1
fi
rm -rf "$DEMO/job"
echo "==> aimaster run --workers 4 --input reviews=$DEMO/reviews --output predictions -- example-classifier"
set +e
"$BIN/aimaster" run --workers 4 \
  --input reviews="$DEMO/reviews" --output predictions \
  --shard-bytes 256K --hp threshold=0.55 --hp embedding_dim=1024 \
  --job-dir "$DEMO/job" --code-dir "$ROOT/examples" \
  -- "$BIN/example-classifier"
status=$?
set -e
echo
echo "==> a few predictions ($DEMO/job/output/predictions/part-00000):"
head -3 "$DEMO/job/output/predictions/part-00000"
echo "==> the same job in Python, one process per worker:"
echo "    $BIN/aimaster run --workers 4 --input reviews=$DEMO/reviews --output scores \\"
echo "      --code-dir $ROOT/examples/python -- $BIN/ebatch-worker --persistent -- python3 -u score.py"
exit $status
