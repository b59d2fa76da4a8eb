#!/usr/bin/env bash
# Runs every test against the real local stack: installs what is missing
# (OpenBao into .cache/), starts it, runs `cargo test`, stops it.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test vault_provider).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null; then
  echo "test: cargo is not installed (https://rustup.rs)" >&2; exit 1
fi
if ! command -v curl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi

trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up
# shellcheck disable=SC1091
source .stack/env

cargo build --quiet --bins
cargo test "$@"
