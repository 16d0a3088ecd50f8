# Two commands do everything: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: serve test lint typecheck check bench soak fuzz clean help

help:
	@echo "make serve     create .venv, install, run the mock on http://127.0.0.1:8080"
	@echo "make test      create .venv, install with test + clients extras, run the whole suite"
	@echo "make lint      ruff format --check + ruff check"
	@echo "make typecheck mypy --strict on the package"
	@echo "make bench     benchmarks (not tests); results in bench/results/"
	@echo "make soak      10-minute soak benchmark"
	@echo "make fuzz      long Hypothesis run (nightly profile)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

# the test extras plus the third-party clients that tests/clients drives (Node clients are
# installed by that suite's session fixture into tests/clients/node/node_modules)
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[test,clients]'
	@touch $(VENV)/.installed $@

serve: $(VENV)/.installed
	$(BIN)/mockserver serve $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check mockserver tests bench examples
	$(BIN)/ruff check mockserver tests bench examples

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy mockserver

check: lint typecheck test

# wrk (Debian package) is the load generator when it can be installed; else the Python one
bench: $(VENV)/.installed-test
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -q wrk >/dev/null 2>&1 \
		|| echo "wrk not installed: the Python load generator measures instead"
	$(BIN)/python -m bench $(BENCH_ARGS)

soak: $(VENV)/.installed-test
	$(BIN)/python -m bench.soak

fuzz: $(VENV)/.installed-test
	HYPOTHESIS_PROFILE=nightly $(BIN)/python -m pytest tests/properties

clean:
	rm -rf $(VENV) build *.egg-info
