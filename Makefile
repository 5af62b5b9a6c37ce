# escrowd — developer entry points. `make run` and `make test` both start with
# `make setup`, which is idempotent and quick when nothing changed.
.PHONY: setup run test test-unit test-functional test-contracts lint typecheck lock bench clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/setup.sh

run: setup
	$(VENV)/bin/escrowd run

# The whole suite: unit, functional (real anvil, local Bitcoin and Solana
# chains, real PostgreSQL), API, then the contract tests (ape on anvil).
test: setup
	$(PY) -m pytest -q
	bash scripts/test-contracts.sh

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-functional: setup
	$(PY) -m pytest -q tests/functional tests/api

test-contracts: setup
	bash scripts/test-contracts.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy node wallets api

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Re-resolve the pinned dependency set after editing pyproject.toml.
lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --prerelease=if-necessary-or-explicit \
		-p 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf .escrowd .stamps contracts/.build
