#!/usr/bin/env bash
# The demo: starts a local OpenBao, seeds a few hundred credentials in it,
# shows the dry run, then rotates/revokes everything with progress bars and
# prints the completeness report. Safe to run again (each run seeds afresh).
#   scripts/demo.sh [--tokens N] [--approles N] [--kv N]
#   scripts/demo.sh --quick [N]   no server: N (default 500) credentials in the
#                                 in-process `memory` system, 1 ms per request
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "${1:-}" == "--quick" ]]; then
  N="${2:-500}"
  echo "==> building keysweep"
  cargo build --quiet --bin keysweep
  KS="$ROOT/target/debug/keysweep"
  WORK="$ROOT/.stack/quick"
  rm -rf "$WORK" && mkdir -p "$WORK"
  export KEYSWEEP_STATE_DIR="$WORK/state"
  python3 scripts/memory_playbook.py "$N" 1ms >"$WORK/quick.yaml"
  echo "==> keysweep plan $WORK/quick.yaml   ($N credentials in the in-process memory system)"
  "$KS" plan "$WORK/quick.yaml"
  echo "==> keysweep run $WORK/quick.yaml"
  set +e
  "$KS" run "$WORK/quick.yaml"
  code=$?
  set -e
  echo "==> exit status $code (0: every credential rotated and its old secret proven dead)"
  exit $code
fi

TOKENS=200 APPROLES=50 KV=50
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tokens) TOKENS="$2"; shift 2 ;;
    --approles) APPROLES="$2"; shift 2 ;;
    --kv) KV="$2"; shift 2 ;;
    *) echo "usage: $0 [--tokens N] [--approles N] [--kv N] | --quick [N]" >&2; exit 2 ;;
  esac
done

scripts/stack.sh up
# shellcheck disable=SC1091
source .stack/env
export KEYSWEEP_STATE_DIR="$ROOT/.stack/demo-state"
rm -rf "$KEYSWEEP_STATE_DIR"

echo "==> building keysweep"
cargo build --quiet --bin keysweep --example seed_openbao
KS="$ROOT/target/debug/keysweep"

echo "==> seeding OpenBao at $VAULT_ADDR"
mkdir -p playbooks/demo
target/debug/examples/seed_openbao --prefix demo --tokens "$TOKENS" --approles "$APPROLES" --kv "$KV" \
  --out playbooks/demo/estate.generated.yaml

echo "==> keysweep validate playbooks/demo.yaml"
"$KS" validate playbooks/demo.yaml

echo "==> keysweep plan playbooks/demo.yaml   (dry run: changes nothing)"
"$KS" plan playbooks/demo.yaml

echo "==> keysweep run playbooks/demo.yaml"
set +e
"$KS" run playbooks/demo.yaml
code=$?
set -e
echo "==> exit status $code (0: every credential rotated or revoked and proven dead)"
echo "==> the Markdown report for the incident ticket: $KEYSWEEP_STATE_DIR/runs/*/report.md"
echo "==> OpenBao keeps running for you to look around (VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root);"
echo "    stop it with: scripts/stack.sh down"
exit $code
