#!/usr/bin/env bash
# Installs redis-server (and redis-cli) from Debian's packages, for the redis
# provider's tests (which start their own throwaway redis-server on a free port
# with ACLs and no persistence). Idempotent: does nothing when redis-server and
# redis-cli are already there. The system's own instance is stopped if the
# package started it.
set -euo pipefail

log() { printf 'install/redis: %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/bin/$1" ]] || [[ -x "/usr/sbin/$1" ]]; }

if have redis-server && have redis-cli; then
  exit 0
fi

log "installing redis-server"
# shellcheck source=apt.bash
source "$(dirname "${BASH_SOURCE[0]}")/apt.bash"
apt_install_server redis-server redis-server
log "installed $(redis-server --version | head -1)"
exit 0
