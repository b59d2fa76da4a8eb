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

log "installing mariadb-server mariadb-client"
# shellcheck source=apt.bash
source "$(dirname "${BASH_SOURCE[0]}")/apt.bash"
apt_install_server mariadb mariadb-server mariadb-client
log "installed $(/usr/sbin/mariadbd --version 2>/dev/null | head -1)"
exit 0
