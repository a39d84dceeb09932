#!/usr/bin/env bash
# The demo behind `./dev demo`. $1: the directory holding the built binaries.
set -euo pipefail
BIN="$1"
"$BIN/aimaster" --help
