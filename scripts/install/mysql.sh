#!/usr/bin/env bash
# Installs MariaDB (mariadbd, mariadb-install-db, the mariadb client) from
# Debian's packages, for the mysql provider's tests (which start their own
# throwaway mariadbd on a free port and a temporary data directory).
# Idempotent: does nothing when mariadbd and mariadb-install-db are already
# there. The system's own instance is stopped if the package started it: the
# tests never use it, and it would hold port 3306.
set -euo pipefail

log() { printf 'install/mysql: %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/bin/$1" ]] || [[ -x "/usr/sbin/$1" ]]; }

if have mariadbd && have mariadb-install-db; then
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  log "mariadb-server is missing and installing it needs root: run 'sudo $0'"
  exit 1
fi

log "installing mariadb-server"
if [[ -z "${APT_UPDATED:-}" ]]; then
  apt-get update -qq
fi
# policy-rc.d keeps the package's post-install from starting the system server.
created_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { if [[ -n "$created_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
# Should it have started anyway, stop it: the tests run their own.
service mariadb stop >/dev/null 2>&1 || true
log "installed $(/usr/sbin/mariadbd --version 2>/dev/null | head -1)"
exit 0
