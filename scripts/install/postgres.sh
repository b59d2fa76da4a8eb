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

log "installing postgresql"
# shellcheck source=apt.bash
source "$(dirname "${BASH_SOURCE[0]}")/apt.bash"
apt_install_server postgresql postgresql
for d in /usr/lib/postgresql/*/bin; do
  if [[ -x "$d/postgres" ]]; then
    log "installed $("$d/postgres" --version)"
  fi
done
exit 0
