#!/usr/bin/env bash
# Runs every test against real servers: installs what is missing (OpenBao and
# moto into .cache/), then `cargo test`. Each test binary starts its own
# OpenBao dev server and moto server (IAM auth on) on free loopback ports and
# stops them when it exits.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test vault_provider).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null; then
  echo "test: cargo is not installed (https://rustup.rs)" >&2; exit 1
fi

scripts/stack.sh install
export KEYSWEEP_BAO_BIN="$ROOT/.cache/venv/bin/bao"
export KEYSWEEP_MOTO_BIN="$ROOT/.cache/venv/bin/moto_server"
cargo test "$@"
