#!/usr/bin/env bash
# Compares what two keysweep binaries print when they load playbooks: for each
# playbook, `validate`, `validate --no-env`, `plan --offline` and
# `plan --offline --format json`, each with every variable the playbooks name
# set and with an empty environment; stdout, stderr and the exit code must be
# byte for byte the same. For a change to the loader that must not change
# what it reports (scripts/bench.sh --load generates the large playbooks).
#   scripts/compare_load.sh BEFORE_BIN AFTER_BIN [PLAYBOOK...]
# Default playbooks: playbooks/*.yaml, playbooks/recipes/*.yaml,
# tests/good_playbooks/*.yaml, tests/bad_playbooks/*.yaml and whatever
# .stack/bench/load holds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ $# -ge 2 ]] || { echo "usage: $0 BEFORE_BIN AFTER_BIN [PLAYBOOK...]" >&2; exit 2; }
BEFORE="$(realpath "$1")" AFTER="$(realpath "$2")"
shift 2
if [[ $# -gt 0 ]]; then
  PLAYBOOKS=("$@")
else
  shopt -s nullglob
  PLAYBOOKS=(playbooks/*.yaml playbooks/recipes/*.yaml tests/good_playbooks/*.yaml tests/bad_playbooks/*.yaml
    .stack/bench/load/memory-*/memory.yaml .stack/bench/load/vault-*/bench.yaml)
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Every ${env:NAME} the playbooks (and what they include) name, set to a value of its shape.
# A key id of AWS's shape, made here (a literal one looks like a leaked
# credential to secret scanners); the same for both binaries.
KEY_ID_VALUE="AKIA$(python3 -c 'import random, string; print("".join(random.choices(string.ascii_uppercase + "234567", k=16)))')"
ENVS=()
while read -r name; do
  case "$name" in
    *URL | *ADDR) value="http://127.0.0.1:8200" ;;
    *KEY_ID) value="$KEY_ID_VALUE" ;;
    *) value="compare-$name" ;;
  esac
  ENVS+=("$name=$value")
done < <(grep -rhoE '\$\{env:[A-Za-z_][A-Za-z0-9_]*\}' playbooks tests/good_playbooks tests/bad_playbooks | sed 's/^${env://; s/}$//' | sort -u)

run() { # bin out env-mode args...
  local bin="$1" out="$2" mode="$3"; shift 3
  rm -rf "$WORK/state"
  local rc=0
  if [[ $mode == full ]]; then
    env -i PATH="$PATH" HOME="$WORK" KEYSWEEP_STATE_DIR="$WORK/state" "${ENVS[@]}" "$bin" "$@" >"$out.stdout" 2>"$out.stderr" || rc=$?
  else
    env -i PATH="$PATH" HOME="$WORK" KEYSWEEP_STATE_DIR="$WORK/state" "$bin" "$@" >"$out.stdout" 2>"$out.stderr" || rc=$?
  fi
  echo "$rc" >"$out.rc"
  # A plan's JSON says when it was made.
  sed -i -E 's/("started_at": )"[^"]*"/\1"…"/' "$out.stdout"
}

same=0 differ=0
for pb in "${PLAYBOOKS[@]}"; do
  for mode in full empty; do
    for args in "validate" "validate --no-env" "plan --offline" "plan --offline --format json"; do
      # shellcheck disable=SC2086
      run "$BEFORE" "$WORK/b" "$mode" $args "$pb"
      # shellcheck disable=SC2086
      run "$AFTER" "$WORK/a" "$mode" $args "$pb"
      if cmp -s "$WORK/b.stdout" "$WORK/a.stdout" && cmp -s "$WORK/b.stderr" "$WORK/a.stderr" && cmp -s "$WORK/b.rc" "$WORK/a.rc"; then
        same=$((same + 1))
      else
        differ=$((differ + 1))
        echo "DIFFERS: ($mode env) keysweep $args $pb (exit $(cat "$WORK/b.rc") -> $(cat "$WORK/a.rc"))"
        diff <(cat "$WORK/b.stdout" "$WORK/b.stderr") <(cat "$WORK/a.stdout" "$WORK/a.stderr") | head -10 || true
      fi
    done
  done
done
echo "compare: ${#PLAYBOOKS[@]} playbooks, $((same + differ)) runs: $same identical, $differ different"
[[ $differ -eq 0 ]]
