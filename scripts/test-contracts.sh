#!/usr/bin/env bash
# Runs the Escrow contract suite (tests/contracts/) with ape's pytest plugin on
# the npm-shipped anvil. Exits non-zero on any failure. Extra arguments go to
# pytest, e.g. scripts/test-contracts.sh -k relayed -x
#
# pyproject.toml's pytest addopts disable ape's plugin (-p no:ape_test) so that
# `pytest tests/unit tests/functional` never starts ape; this script overrides
# addopts to turn it back on for the contract tests only.
set -euo pipefail
cd "$(dirname "$0")/.."

ANVIL_DIR="$PWD/local-chain/evm/node_modules/@foundry-rs/anvil-linux-amd64/bin"
[ -x .venv/bin/ape ] || { echo "test-contracts: .venv missing, run scripts/setup.sh" >&2; exit 1; }
[ -x "$ANVIL_DIR/anvil" ] || { echo "test-contracts: anvil missing, run scripts/setup.sh" >&2; exit 1; }

# ape-vyper uses the `vyper` on PATH when it matches the pragma (no download);
# ape-foundry starts the `anvil` on PATH.
export PATH="$PWD/.venv/bin:$ANVIL_DIR:$PATH"

exec ape test tests/contracts \
  -o "addopts=--import-mode=importlib -p no:cacheprovider" \
  "$@"
