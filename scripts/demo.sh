#!/usr/bin/env bash
# The demo: starts a local OpenBao, seeds a few hundred credentials in it,
# shows the dry run, then rotates/revokes everything with progress bars and
# prints the completeness report. Safe to run again (each run seeds afresh).
#   scripts/demo.sh [--tokens N] [--approles N] [--kv N]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOKENS=200 APPROLES=50 KV=50
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tokens) TOKENS="$2"; shift 2 ;;
    --approles) APPROLES="$2"; shift 2 ;;
    --kv) KV="$2"; shift 2 ;;
    *) echo "usage: $0 [--tokens N] [--approles N] [--kv N]" >&2; exit 2 ;;
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
