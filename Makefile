# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install seed clean browser-deps demo bench soak compat

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo,dev]'
	touch $(STAMP)

install: $(STAMP)

seed: $(STAMP)
	$(BIN)/gateway seed --if-empty

run: $(STAMP) seed
	$(BIN)/gateway serve --host 127.0.0.1 --port 8000

# with `make run` serving in another shell: a realistic mix for the metrics and the dashboard
demo: $(STAMP)
	$(BIN)/gateway demo-traffic

test: $(STAMP) browser-deps
	$(BIN)/ruff check gateway features legacy_flask tests
	$(BIN)/mypy
	$(BIN)/pytest -m "not load" $(PYTEST_ARGS)
	$(BIN)/pytest -m load $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: PYTEST_ARGS selected no load test

# the browser test's Chromium and its driver (Debian packages), installed only when missing;
# without apt-get the browser test skips (and fails under CI=true)
browser-deps:
	@test -x /usr/bin/chromedriver || { \
	  if ! command -v apt-get >/dev/null; then echo "no apt-get: install chromium and chromedriver yourself"; exit 0; fi; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }

# real servers, wrk and ratios (bench/README.md): writes bench/RESULTS.md and bench/results.json.
# BENCH_QUICK=1 checks the harness in about seven minutes; the full run takes about 35 minutes.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[demo,dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	bench/setup.sh
	$(BIN)/python -m bench.run

soak: $(BENCH_STAMP)
	bench/setup.sh
	$(BIN)/python -m bench.soak

# real public Flask apps' own suites (tests/compat/apps/), each in a virtualenv of its own pins:
# directly, through the gateway in-process and with the app under gunicorn; writes tests/compat/RESULTS.md
compat: $(STAMP)
	$(BIN)/python -m tests.compat.run

lint: $(STAMP)
	$(BIN)/ruff check gateway features legacy_flask tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .compat demo.db .pytest_cache .mypy_cache .ruff_cache
