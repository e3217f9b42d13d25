# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUNDLE := web/static/dist/console.js

.PHONY: demo test lint typecheck unit install clean

# Python environment.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Front end: packages from the npm registry, bundled with esbuild.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(BUNDLE): node_modules/.package-lock.json $(wildcard web/frontend/*.js)
	npm run --silent build

install: $(STAMP) $(BUNDLE)

demo: install
	$(BIN)/pratica demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) var node_modules web/static/dist
