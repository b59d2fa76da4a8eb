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

log "installing slapd ldap-utils"
# No default directory: the tests configure their own.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
# shellcheck source=apt.bash
source "$(dirname "${BASH_SOURCE[0]}")/apt.bash"
apt_install_server slapd slapd ldap-utils
log "installed $(/usr/sbin/slapd -VV 2>&1 | head -1 | sed 's/^@(#) \$//')"
exit 0
