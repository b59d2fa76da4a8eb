#!/usr/bin/env bash
# Benchmark (not a test): prints credentials/second and peak memory for
#   1. `keysweep plan` of a 5,000-credential playbook (offline), and
#   2. `keysweep run` rotating/revoking 2,000 credentials in a local OpenBao,
#   3. 50 ms per request (a cloud round trip, added by examples/latency_proxy
#      in front of the same OpenBao), in one run: a sequential script doing
#      the same rotate+verify of a token (examples/rotate_baseline, one at a
#      time, on a sample, extrapolated), the same calls at high concurrency
#      (what server and proxy sustain), the 15 calls keysweep's own token
#      lifecycle makes at the same concurrency (what they sustain for
#      keysweep's calls, without keysweep), and `keysweep run` with no
#      setting (default concurrency); with the ratios keysweep/sequential
#      and keysweep/each concurrent baseline,
#   4. `keysweep run` of 20,000 credentials in the in-process `memory` system
#      (no latency, journal on): keysweep's own overhead per lifecycle.
# Uses a release build and GNU time. Numbers depend on the machine; they are
# printed, never asserted.
#   scripts/bench.sh [N_RUN]   (default 2000)
#
#   scripts/bench.sh --load [N...]   (default 5000 20000 50000 100000)
# Loading only, no server: for each N, CPU seconds (user + system) and peak
# RSS of `keysweep validate` and `keysweep plan --offline` on a generated
# playbook of N credentials, of two estates: the in-process `memory` system
# (scripts/memory_playbook.py) and a Vault estate (the demo playbook including
# what examples/seed_openbao.rs --no-create writes), each in files of at most
# 20,000 credentials (a playbook file is at most 8 MiB). The last
# column, CPU per 10,000 credentials, stays flat when the cost is linear.
# KEYSWEEP_BIN=path measures another keysweep binary (e.g. an older build)
# with the same playbooks; the generated playbooks stay in .stack/bench/load.
# Environment: KEYSWEEP_BENCH_BIN=dir with prebuilt keysweep, seed_openbao,
# latency_proxy and rotate_baseline (default: cargo build --release);
# BENCH50_N (tokens keysweep rotates at 50 ms, default 2000), BENCH50_SEQ
# (sequential sample, default 20), BENCH50_CONC (concurrent baseline's tokens,
# default 1000) and BENCH50_AT_ONCE (its concurrency, default 256).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-2000}"
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

if [[ "${1:-}" == "--load" ]]; then
  shift
  SIZES=("$@")
  [[ ${#SIZES[@]} -gt 0 ]] || SIZES=(5000 20000 50000 100000)
  if [[ -n "${KEYSWEEP_BIN:-}" ]]; then
    cargo build --quiet --release --example seed_openbao
    KS="$KEYSWEEP_BIN"
  else
    cargo build --quiet --release --bin keysweep --example seed_openbao
    KS="$TARGET/release/keysweep"
  fi
  SEED="$TARGET/release/examples/seed_openbao"
  LOAD="$ROOT/.stack/bench/load"
  mkdir -p "$LOAD"
  # Nothing is contacted: validate and plan --offline only read the variables.
  export VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=bench-not-a-token KEYSWEEP_STATE_DIR="$LOAD/state"
  load_measure() { # estate n playbook command...
    local estate="$1" n="$2" pb="$3"; shift 3
    local label="$*"
    /usr/bin/time -f '%U %S %M' -o "$LOAD/time" "$KS" "$@" "$pb" >"$LOAD/out" 2>"$LOAD/err" || {
      echo "bench: load: keysweep $label $pb failed:" >&2; head -5 "$LOAD/err" >&2; return 1; }
    read -r user sys kb <"$LOAD/time"
    awk -v e="$estate" -v n="$n" -v c="$label" -v u="$user" -v s="$sys" -v k="$kb" 'BEGIN {
      cpu = u + s
      printf "bench: load %-6s %-14s %7d credentials: %6.2f CPU-s (user %.2f + sys %.2f), peak RSS %7.1f MiB, %.3f CPU-s per 10k\n", e, c, n, cpu, u, s, k / 1024, cpu * 10000 / n }'
  }
  # A playbook file is at most 8 MiB: both estates come in files of at most
  # 20,000 credentials, included by one root file.
  per_file=20000
  for n in "${SIZES[@]}"; do
    mdir="$LOAD/memory-$n"
    [[ -s "$mdir/memory.yaml" ]] || python3 scripts/memory_playbook.py "$n" --dir "$mdir" --per-file "$per_file"
    mem="$mdir/memory.yaml"
    vdir="$LOAD/vault-$n"
    if [[ ! -s "$vdir/bench.yaml" ]]; then
      mkdir -p "$vdir/demo"
      cp playbooks/demo/estate.yaml "$vdir/demo/estate.yaml"
      part=0
      for ((start = 0; start < n; start += per_file)); do
        m=$(( n - start < per_file ? n - start : per_file ))
        t=$(( m * 8 / 10 )); a=$(( m / 10 )); r=$(( m >= 100 ? 10 : 0 )); k=$(( m - t - a - r ))
        part=$((part + 1))
        "$SEED" --no-create --prefix "load$part" --tokens "$t" --approles "$a" --kv "$k" --revoke-tokens "$r" \
          --out "$vdir/demo/estate-$part.generated.yaml" 2>/dev/null
      done
      cp playbooks/demo.yaml "$vdir/bench.yaml"
    fi
    for estate in memory vault; do
      pb="$mem"; [[ $estate == vault ]] && pb="$vdir/bench.yaml"
      load_measure "$estate" "$n" "$pb" validate
      load_measure "$estate" "$n" "$pb" plan --offline
    done
  done
  exit 0
fi

scripts/stack.sh up
# shellcheck disable=SC1091
source .stack/env
if [[ -n "${KEYSWEEP_BENCH_BIN:-}" ]]; then
  BIN="$KEYSWEEP_BENCH_BIN"; KS="$BIN/keysweep"; SEED="$BIN/seed_openbao"; PROXY="$BIN/latency_proxy"; BASE="$BIN/rotate_baseline"
else
  cargo build --quiet --release --bin keysweep --example seed_openbao --example latency_proxy --example rotate_baseline
  REL="$TARGET/release"
  KS="$REL/keysweep"; SEED="$REL/examples/seed_openbao"; PROXY="$REL/examples/latency_proxy"; BASE="$REL/examples/rotate_baseline"
fi
WORK="$ROOT/.stack/bench"
rm -rf "$WORK"; mkdir -p "$WORK/pb"
cp playbooks/demo.yaml "$WORK/pb/bench.yaml"
mkdir -p "$WORK/pb/demo"
export KEYSWEEP_STATE_DIR="$WORK/state"

measure() { # label count cmd...
  local label="$1" count="$2"; shift 2
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || true
  read -r secs kb <"$WORK/time"
  echo "$secs" >"$WORK/$label.secs"
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

# ---- 3. 50 ms per request: sequential script, concurrent baseline, keysweep with defaults.
N50="${BENCH50_N:-2000}"; SEQ="${BENCH50_SEQ:-20}"; CONC="${BENCH50_CONC:-1000}"; AT_ONCE="${BENCH50_AT_ONCE:-256}"
PROXY_ADDR="127.0.0.1:${KEYSWEEP_BENCH_PROXY_PORT:-18250}"
PROXY_PID=""
trap '[[ -n "$PROXY_PID" ]] && kill "$PROXY_PID" 2>/dev/null || true' EXIT
proxy_up() { # label: a fresh proxy (its request count is one phase's)
  "$PROXY" --listen "$PROXY_ADDR" --upstream "$VAULT_ADDR" --delay-ms 50 >"$WORK/proxy-$1.out" 2>"$WORK/proxy-$1.err" &
  PROXY_PID=$!
  for _ in $(seq 50); do
    kill -0 "$PROXY_PID" 2>/dev/null || break
    grep -q '^latency_proxy:' "$WORK/proxy-$1.err" && return 0
    sleep 0.1
  done
  echo "bench: latency proxy did not start" >&2; cat "$WORK/proxy-$1.err" >&2; exit 1
}
proxy_down() { # label count: prints requests per credential and the most in one second
  kill -TERM "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=""
  awk -v n="$2" -F'[= ]' '/^requests=/ { printf "bench:        %d requests at the proxy = %.1f per credential, at most %d in one second\n", $2, $2 / n, $4 }' "$WORK/proxy-$1.out"
}
echo "bench: 50 ms per request (latency proxy at $PROXY_ADDR in front of $VAULT_ADDR): the same token rotate+verify three ways"
BL="l$RANDOM"; PB50="k$RANDOM"
"$SEED" --prefix "$BL" --tokens $(( SEQ + 2 * CONC )) --approles 0 --kv 0 --revoke-tokens 0 --out "$WORK/baseline-estate.yaml"
mkdir -p "$WORK/pb50/demo"
"$SEED" --prefix "$PB50" --tokens "$N50" --approles 0 --kv 0 --revoke-tokens 0 --out "$WORK/pb50/demo/estate.generated.yaml"
# The playbook declares no limits: keysweep's defaults decide.
cat >"$WORK/pb50/bench.yaml" <<'YAML'
version: 1
include:
  - demo/*.yaml
providers:
  bao:
    kind: vault
    address: ${env:VAULT_ADDR}
    auth: { method: token, token: "${env:VAULT_TOKEN}" }
YAML

proxy_up seq
VAULT_ADDR="http://$PROXY_ADDR" "$BASE" --prefix "$BL" --from 0 --count "$SEQ" --concurrency 1 >"$WORK/seq.out"
SEQ_RATE=$(sed -n 's/^rate=//p' "$WORK/seq.out")
printf 'bench: (a) sequential script, one at a time, %d tokens (a sample, extrapolated): %8.2f credentials/s\n' "$SEQ" "$SEQ_RATE"
proxy_down seq "$SEQ"

proxy_up conc
VAULT_ADDR="http://$PROXY_ADDR" "$BASE" --prefix "$BL" --from "$SEQ" --count "$CONC" --concurrency "$AT_ONCE" >"$WORK/conc.out"
CONC_RATE=$(sed -n 's/^rate=//p' "$WORK/conc.out")
printf 'bench: (b) the same calls, %d at once, %d tokens (what server + proxy sustain): %8.2f credentials/s\n' "$AT_ONCE" "$CONC" "$CONC_RATE"
proxy_down conc "$CONC"

proxy_up same
VAULT_ADDR="http://$PROXY_ADDR" "$BASE" --calls keysweep --prefix "$BL" --from $(( SEQ + CONC )) --count "$CONC" --concurrency "$AT_ONCE" >"$WORK/same.out"
SAME_RATE=$(sed -n 's/^rate=//p' "$WORK/same.out")
printf "bench: (b2) keysweep's own 15 calls per token, %d at once, %d tokens (what server + proxy sustain for them): %8.2f credentials/s\n" "$AT_ONCE" "$CONC" "$SAME_RATE"
proxy_down same "$CONC"

proxy_up ks
echo "bench: (c) keysweep run, no concurrency setting, $N50 tokens:"
VAULT_ADDR="http://$PROXY_ADDR" KEYSWEEP_STATE_DIR="$WORK/state50" measure run50 "$N50" "$KS" run "$WORK/pb50/bench.yaml"
grep -h 'concurrency' "$WORK/run50.err" | sed 's/^/bench:        /'
proxy_down ks "$N50"
KS_RATE=$(awk -v n="$N50" '{ printf "%.3f", ($1 > 0 ? n / $1 : 0) }' "$WORK/run50.secs")
awk -v k="$KS_RATE" -v s="$SEQ_RATE" -v c="$CONC_RATE" -v m="$SAME_RATE" 'BEGIN {
  printf "bench: at 50 ms: keysweep %.1f/s; keysweep/sequential = %.1fx (goal >= 20x)\n", k, (s > 0 ? k / s : 0)
  printf "bench: at 50 ms: keysweep/(b2) the server doing the same calls = %.2fx (goal >= 0.8x); keysweep/(b) the 7-call script at once = %.2fx\n", (m > 0 ? k / m : 0), (c > 0 ? k / c : 0) }'
scripts/stack.sh down

echo "bench: run of 20000 credentials in the in-process memory system (orchestration overhead, journal on)"
python3 scripts/memory_playbook.py 20000 >"$WORK/memory.yaml"
KEYSWEEP_STATE_DIR="$WORK/memory-state" measure memory 20000 "$KS" run "$WORK/memory.yaml"
# The whole command above (load, connect, run, reports); the engine alone:
grep -h "credential(s) worked in" "$WORK/memory.err" | sed 's/^keysweep:/bench: memory engine alone:/' || true
echo "bench: goal: >= 20000 credential lifecycles/s against memory"

