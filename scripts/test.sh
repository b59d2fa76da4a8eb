#!/usr/bin/env bash
# Runs every test against real servers: installs what is missing (OpenBao and
# moto into .cache/), then `cargo test`. Each test binary starts its own
# OpenBao dev server and moto server (IAM auth on) on free loopback ports and
# stops them when it exits.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test vault_provider).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null; then
  echo "test: cargo is not installed (https://rustup.rs)" >&2; exit 1
fi

scripts/stack.sh install
# One build, never rebuilt piecemeal here: incremental caches only take disk
# (CI machines have run out of it).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export KEYSWEEP_BAO_BIN="$ROOT/.cache/venv/bin/bao"
export KEYSWEEP_MOTO_BIN="$ROOT/.cache/venv/bin/moto_server"

# The canary scan: the tests record every secret value they create or read
# back (tests/common canary()); after the run, the whole test output and every
# file the tests left under this run's TMPDIR are scanned for them.
CANARY_DIR="$ROOT/target/canary"
rm -rf "$CANARY_DIR" && mkdir -p "$CANARY_DIR/tmp" && chmod 700 "$CANARY_DIR"
export KEYSWEEP_CANARY_FILE="$CANARY_DIR/values.hex"
export TMPDIR="$CANARY_DIR/tmp"
# Each conformance run appends the trials it ran; checked after the run.
export KEYSWEEP_CONFORMANCE_LOG="$CANARY_DIR/conformance.log"
# `crash-hook`: the test-only journal hook the kill/resume tests use (never in a release build).
set +e
cargo test --no-fail-fast --features crash-hook "$@" 2>&1 | tee "$CANARY_DIR/test-output.log"
status=${PIPESTATUS[0]}
set -e
# The vendor simulators' own contract tests (stdlib unittest; each starts its simulator).
if [ "$#" -eq 0 ]; then
  python3 -m unittest discover -s sims -p 'test_*.py' 2>&1 | tail -n 4 | tee -a "$CANARY_DIR/test-output.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
python3 scripts/canary_scan.py "$KEYSWEEP_CANARY_FILE" "$CANARY_DIR/test-output.log" "$TMPDIR" || status=1
# With a test filter, only what ran is summarised; the full suite must cover every kind.
if [ "$#" -eq 0 ]; then
  python3 scripts/conformance_summary.py "$KEYSWEEP_CONFORMANCE_LOG" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/keysweep" || status=1
fi
exit "$status"
