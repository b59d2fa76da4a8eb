# Sourced by scripts/install/*.sh: installs Debian packages without letting
# their post-install start the system's own server (the tests start their
# own throwaway instances), and stops it should it have started anyway.
#   apt_install_server <service> <package>...
apt_install_server() {
  local service="$1"; shift
  if [[ "$(id -u)" != 0 ]]; then
    printf 'install: %s are missing and installing them needs root\n' "$*" >&2
    return 1
  fi
  if [[ -z "${APT_UPDATED:-}" ]]; then
    apt-get update -qq
    export APT_UPDATED=1
  fi
  # policy-rc.d keeps the packages' post-install from starting the service.
  local created_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || rc=$?
  if [[ -n "$created_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi
  service "$service" stop >/dev/null 2>&1 || true
  return "$rc"
}
