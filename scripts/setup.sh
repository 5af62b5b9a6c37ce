#!/usr/bin/env bash
# Sets up everything escrowd needs on a fresh machine, from the project's own
# files: .venv with the locked Python packages, the npm-pinned anvil, and the
# Debian packages the tests need (PostgreSQL binaries, only where missing).
# Idempotent: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMPS=.stamps
mkdir -p "$STAMPS"
PYTHON=${PYTHON:-python3}

stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
digest() { cat "$@" | sha256sum | cut -c1-32; }

# 1. Python: .venv from requirements.lock (exact pins with hashes), installed by uv.
py_key=$(digest requirements.lock pyproject.toml)
if [ ! -x .venv/bin/python ] || ! stamp_ok python "$py_key"; then
  echo "setup: python packages"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
  .venv/bin/uv pip sync -q -p .venv/bin/python requirements.lock
  .venv/bin/uv pip install -q -p .venv/bin/python --no-deps -e .
  echo "$py_key" > "$STAMPS/python"
fi

# 2. anvil, shipped inside the npm package @foundry-rs/anvil (pinned in package-lock.json).
npm_key=$(digest local-chain/evm/package.json local-chain/evm/package-lock.json)
if [ ! -x local-chain/evm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ] || ! stamp_ok npm "$npm_key"; then
  echo "setup: anvil (npm)"
  command -v npm >/dev/null || { echo "setup: npm is required (Node.js >= 18)" >&2; exit 1; }
  (cd local-chain/evm && npm ci --no-audit --no-fund --loglevel=error)
  echo "$npm_key" > "$STAMPS/npm"
fi

# 3. PostgreSQL binaries, for the tests' throwaway cluster where no server runs.
if ! stamp_ok debian "pg"; then
  if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null; then
    echo "setup: postgresql (apt)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
  echo "pg" > "$STAMPS/debian"
fi

# 4. Compile the contracts once (cached by source hash).
if [ -f contracts/Escrow.vy ]; then
  .venv/bin/python -c "from node.chains.evm.artifacts import load; load('Escrow')"
fi
echo "setup: ok"
