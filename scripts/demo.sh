#!/usr/bin/env bash
# The demo: starts a local OpenBao, seeds a few hundred credentials in it,
# shows the dry run, then rotates/revokes everything with progress bars and
# prints the completeness report. Safe to run again (each run seeds afresh).
#   scripts/demo.sh [--tokens N] [--approles N] [--kv N]
#   scripts/demo.sh --quick [N]   no server: N (default 500) credentials in the
#                                 in-process `memory` system, 1 ms per request
#   scripts/demo.sh --incident    the Okta breach (playbooks/incident-okta.yaml)
#                                 against the Okta simulator and OpenBao
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

if [[ "${1:-}" == "--incident" ]]; then
  # The Cloudflare-shaped incident against local simulators (playbooks/incident-okta.yaml),
  # on a fresh OpenBao (the dev server keeps nothing across a restart).
  STACK="${KEYSWEEP_STACK_DIR:-$ROOT/.stack}"
  scripts/stack.sh down
  scripts/stack.sh up
  # shellcheck disable=SC1091
  source "$STACK/env"
  WORK="$STACK/incident"
  rm -rf "$WORK" && mkdir -p "$WORK" && chmod 700 "$WORK"
  export KEYSWEEP_STATE_DIR="$WORK/state"
  if [[ -n "${KEYSWEEP_BIN:-}" ]]; then
    KS="$KEYSWEEP_BIN"
  else
    echo "==> building keysweep"
    cargo build --quiet --bin keysweep
    KS="${CARGO_TARGET_DIR:-$ROOT/target}/debug/keysweep"
  fi
  # A vendor simulator (sims/<name>.py) on a free loopback port; prints its address.
  start_sim() {
    local name="$1"
    if [[ -f "$STACK/$name.pid" ]]; then kill "$(cat "$STACK/$name.pid")" 2>/dev/null || true; fi
    python3 -u "sims/$name.py" --port 0 >"$WORK/$name.out" 2>"$WORK/$name.log" &
    echo $! >"$STACK/$name.pid"
    for _ in $(seq 100); do grep -q listening "$WORK/$name.out" 2>/dev/null && break; sleep 0.1; done
    echo "http://$(sed -n 's/^listening on //p' "$WORK/$name.out")"
  }
  echo "==> starting the vendor simulators (sims/) and a local AWS (moto, authentication on)"
  OKTA="$(start_sim okta)"
  ATLASSIAN="$(start_sim atlassian)"
  SLACK="$(start_sim slack)"
  SMARTSHEET="$(start_sim smartsheet)"
  MOVEWORKS="$(start_sim moveworks)"
  MOTO_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  if [[ -f "$STACK/moto.pid" ]]; then kill "$(cat "$STACK/moto.pid")" 2>/dev/null || true; fi
  MOTO_IAM_LOAD_MANAGED_POLICIES=true "$KEYSWEEP_MOTO_BIN" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  echo $! >"$STACK/moto.pid"
  MOTO="http://127.0.0.1:$MOTO_PORT"
  for _ in $(seq 300); do curl -fsS -o /dev/null "$MOTO/moto-api/" 2>/dev/null && break; sleep 0.1; done
  python3 scripts/seed_incident.py --okta "$OKTA" --vault "$VAULT_ADDR" --moto "$MOTO" --atlassian "$ATLASSIAN" \
    --slack "$SLACK" --smartsheet "$SMARTSHEET" --moveworks "$MOVEWORKS" --env "$WORK/env"
  # shellcheck disable=SC1091
  source "$WORK/env"
  PB="$WORK/incident.yaml"
  # The local OpenBao dev server's root token is the demo's own Vault login: not part of the incident.
  # keysweep's own admin logins are not part of the incident.
  IGNORE="discovery: { ignore: [
    { provider: vault, kind: vault_token, id: \"*\", reason: \"the demo OpenBao root token (keysweep login)\" },
    { provider: aws, kind: aws_iam_access_key, id: \"$AWS_ACCESS_KEY_ID\", reason: \"keysweep's AWS login (from the credential chain)\" },
    { provider: slack, id: \"$SLACK_KEYSWEEP_USER\", reason: \"keysweep's Slack login (an admin's user token)\" },
    { provider: smartsheet, id: \"admin@acme.example\", reason: \"keysweep's Smartsheet admin login account\" },
    { provider: moveworks, id: \"$MOVEWORKS_KEYSWEEP_TOKEN_ID\", reason: \"keysweep's Moveworks-style admin token (its login)\" } ] }"
  printf 'version: 1\ninclude: [%s]\n%s\n' "$ROOT/playbooks/incident-okta.yaml" "$IGNORE" >"$PB"

  echo "==> keysweep discover   (what do the systems hold that the playbook misses?)"
  set +e
  "$KS" discover "$PB" --emit "$WORK/discovered.yaml"
  echo "==> discover exit status $? (1: unlisted credentials found)"
  set -e
  echo "==> a responder reviews the drafts: owners set, the inactive ones stay revocations"
  sed -i 's/owner: FILL-ME/owner: security/' "$WORK/discovered.yaml"
  printf 'version: 1\ninclude: [%s, discovered.yaml]\n%s\n' "$ROOT/playbooks/incident-okta.yaml" "$IGNORE" >"$PB"
  "$KS" validate "$PB"

  echo "==> keysweep run   (API tokens wait for a person; everything else by API)"
  set +e
  "$KS" run "$PB"
  echo "==> exit status $? (1: gaps — the API tokens await a human)"
  set -e
  echo "==> a person generates a new Smartsheet access token for the Okta sync and gives it to keysweep supply"
  curl -fsS -X POST -H 'Content-Type: application/json' -d '{"user":"svc-smartsheet@acme.example","name":"okta-sync"}' "$SMARTSHEET/_sim/issue_token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])' | "$KS" supply "$PB" smartsheet/okta-sync
  for pair in "okta/moveworks:svc-moveworks@acme.example:moveworks" "okta/smartsheet-sync:svc-smartsheet@acme.example:smartsheet-sync" \
              "okta/keysweep:keysweep@acme.example:keysweep"; do
    IFS=: read -r id user name <<<"$pair"
    echo "==> a person re-issues $id in the Okta Admin Console and gives it to keysweep supply (hidden)"
    curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"user\":\"$user\",\"name\":\"$name\"}" "$OKTA/_sim/issue_token" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])' | "$KS" supply "$PB" "$id"
  done
  echo "==> a person creates a second OAuth credential for the Atlassian service account and supplies it with its client id"
  cred="$(curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"account_id\":\"$ATLASSIAN_SMARTSHEET_SA_ACCOUNT\",\"name\":\"smartsheet-2026-12\"}" "$ATLASSIAN/_sim/issue_credential")"
  client_id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$cred")"
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$cred" |
    "$KS" supply "$PB" atlassian/smartsheet-integration --field "client_id=$client_id"
  unset cred
  echo "==> keysweep run   (tests the new tokens, revokes the old ones, proves them dead)"
  set +e
  "$KS" run "$PB"
  code=$?
  set -e
  echo "==> exit status $code (0: every credential rotated or revoked and proven dead)"
  echo "==> the systems' own state (independent of keysweep): curl <sim>/_sim/state for $OKTA $ATLASSIAN $SLACK $SMARTSHEET $MOVEWORKS; stop with: scripts/stack.sh down"
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
