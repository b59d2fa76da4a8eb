#!/usr/bin/env bash
# Installs OpenLDAP's slapd and the ldap-utils client tools from Debian's
# packages, for the ldap provider's tests (which start their own throwaway
# slapd on a free port with their own config). Idempotent: does nothing when
# slapd and ldapadd are already there. The system's own slapd instance is left
# unconfigured and stopped.
set -euo pipefail

log() { printf 'install/ldap: %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

if have slapd && have ldapadd && have slappasswd; then
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  log "slapd is missing and installing it needs root: run 'sudo $0'"
  exit 1
fi

log "installing slapd and ldap-utils"
# No default directory: the tests configure their own.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
if [[ -z "${APT_UPDATED:-}" ]]; then
  apt-get update -qq
fi
# policy-rc.d keeps the package's post-install from starting the system slapd.
created_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { if [[ -n "$created_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null
# Should it have started anyway, stop it: the tests run their own.
service slapd stop >/dev/null 2>&1 || true
log "installed $(/usr/sbin/slapd -VV 2>&1 | head -1 | sed 's/^@(#) \$//')"
exit 0
