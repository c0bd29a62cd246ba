# Targets used by people and by CI alike (.ci/run calls `make test`).
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: install demo serve test test-sqlite test-postgres lint format bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Build the demo community (SQLite in ./data) and serve it; prints the URL and a login.
demo: install
	$(BIN)/fengchao demo

serve: install
	$(BIN)/fengchao serve

## The whole suite: lint, migrations check, tests on SQLite and on PostgreSQL, browser tests.
test: install
	bash scripts/test.sh

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: install
	$(BIN)/python benchmarks/import.py --quick
	$(BIN)/python benchmarks/demo.py --quick
	$(BIN)/python benchmarks/pages.py --quick

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
