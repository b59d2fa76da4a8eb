#!/usr/bin/env bash
# Benchmark (not a test): prints credentials/second and peak memory for
#   1. `keysweep plan` of a 5,000-credential playbook (offline), and
#   2. `keysweep run` rotating/revoking 2,000 credentials in a local OpenBao,
#   3. `keysweep run` of 20,000 credentials in the in-process `memory` system
#      (no latency, journal on): keysweep's own overhead per lifecycle.
# Uses a release build and GNU time. Numbers depend on the machine; they are
# printed, never asserted.
#   scripts/bench.sh [N_RUN]   (default 2000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-2000}"
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

scripts/stack.sh up
# shellcheck disable=SC1091
source .stack/env
cargo build --quiet --release --bin keysweep --example seed_openbao
KS="$ROOT/target/release/keysweep"
SEED="$ROOT/target/release/examples/seed_openbao"
WORK="$ROOT/.stack/bench"
rm -rf "$WORK"; mkdir -p "$WORK/pb"
cp playbooks/demo.yaml "$WORK/pb/bench.yaml"
mkdir -p "$WORK/pb/demo"
export KEYSWEEP_STATE_DIR="$WORK/state"

measure() { # label count cmd...
  local label="$1" count="$2"; shift 2
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || true
  read -r secs kb <"$WORK/time"
  awk -v l="$label" -v n="$count" -v s="$secs" -v k="$kb" 'BEGIN {
    printf "bench: %-6s %6d credentials in %7.2f s = %8.1f credentials/s, peak RSS %6.1f MiB\n", l, n, s, (s > 0 ? n / s : 0), k / 1024 }'
  head -1 "$WORK/$label.out"
}

echo "bench: plan of 5000 credentials (offline)"
"$SEED" --no-create --prefix plan --tokens 4000 --approles 500 --kv 490 --revoke-tokens 10 --out "$WORK/pb/demo/estate.generated.yaml" 2>/dev/null
measure plan 5000 "$KS" plan --offline "$WORK/pb/bench.yaml"

echo "bench: run of $N credentials against OpenBao at $VAULT_ADDR"
T=$(( N * 3 / 4 )); A=$(( N / 8 )); K=$(( N - T - A - 10 ))
"$SEED" --prefix "b$RANDOM" --tokens "$T" --approles "$A" --kv "$K" --revoke-tokens 10 --out "$WORK/pb/demo/estate.generated.yaml"
measure run "$N" "$KS" run "$WORK/pb/bench.yaml" --quiet
scripts/stack.sh down

echo "bench: run of 20000 credentials in the in-process memory system (orchestration overhead, journal on)"
python3 scripts/memory_playbook.py 20000 >"$WORK/memory.yaml"
KEYSWEEP_STATE_DIR="$WORK/memory-state" measure memory 20000 "$KS" run "$WORK/memory.yaml" --quiet --concurrency 64
