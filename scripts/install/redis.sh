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

if [[ "$(id -u)" != 0 ]]; then
  log "redis-server is missing and installing it needs root: run 'sudo $0'"
  exit 1
fi

log "installing redis-server"
if [[ -z "${APT_UPDATED:-}" ]]; then
  apt-get update -qq
fi
# policy-rc.d keeps the package's post-install from starting the system redis.
created_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { if [[ -n "$created_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
# Should it have started anyway, stop it: the tests run their own.
service redis-server stop >/dev/null 2>&1 || true
log "installed $(redis-server --version | head -1)"
exit 0
