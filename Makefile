# bayesgmm: one virtual environment at .venv, created if missing.
#   make demo   set up, then run the demo on the bundled Old Faithful data
#   make test   set up, then lint and run the test suite (what CI runs)
#   make docs   set up, then build the documentation site (warnings are errors)

PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-slow lint format bench docs browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "bayesgmm needs Python >= 3.12 but .venv has " + sys.version.split()[0] + "; remove .venv and run again with PYTHON=/path/to/python3.12")'
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bayesgmm demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint browser
	$(BIN)/python -m pytest

# Debian's chromium for the test that renders report.html (skipped, with a message, if it
# cannot be installed: it needs root and apt).
browser:
	@command -v chromium >/dev/null 2>&1 || [ ! -x /usr/bin/apt-get ] || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "could not install chromium: the browser test will be skipped"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_em_vs_sklearn.py

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	$(BIN)/python docs/check_figures.py docs/_build/html

clean:
	rm -rf $(VENV) bayesgmm-demo .pytest_cache .ruff_cache docs/_build docs/api/generated
