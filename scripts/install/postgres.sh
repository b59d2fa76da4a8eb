#!/usr/bin/env bash
# Installs PostgreSQL (initdb, postgres) from Debian's packages, for the
# postgres provider's tests (which start their own throwaway server with
# initdb on a temporary data directory and a free port, as the `postgres`
# system user the package creates). Debian 12 gives PostgreSQL 15.
# Idempotent: does nothing when the server binaries are already there. The
# system's own cluster is stopped if the package started it: the tests never
# use it, and it would hold port 5432.
set -euo pipefail

log() { printf 'install/postgres: %s\n' "$*" >&2; }

# The server binaries: KEYSWEEP_PG_BIN_DIR, Debian's versioned directory, or
# wherever pg_config says they are.
have_server() {
  local d
  for d in "${KEYSWEEP_PG_BIN_DIR:-}" /usr/lib/postgresql/15/bin; do
    [[ -n "$d" && -x "$d/initdb" && -x "$d/postgres" ]] && return 0
  done
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    [[ -n "$d" && -x "$d/initdb" && -x "$d/postgres" ]] && return 0
  fi
  # Any other installed major version (Debian keeps one directory per version).
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" && -x "$d/postgres" ]] && return 0
  done
  return 1
}

if have_server && getent passwd postgres >/dev/null 2>&1; then
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  log "PostgreSQL is missing and installing it needs root: run 'sudo $0'"
  exit 1
fi

log "installing postgresql"
if [[ -z "${APT_UPDATED:-}" ]]; then
  apt-get update -qq
fi
# policy-rc.d keeps the package's post-install from starting the system cluster.
created_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { if [[ -n "$created_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
# Should it have started anyway, stop it: the tests run their own.
service postgresql stop >/dev/null 2>&1 || true
for d in /usr/lib/postgresql/*/bin; do
  if [[ -x "$d/postgres" ]]; then
    log "installed $("$d/postgres" --version)"
  fi
done
exit 0
