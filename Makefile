PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-requirements

.PHONY: run test test-fast lint

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	scripts/run.sh

# pytest-xdist: most of the suite's time is spent waiting on the processes its tests start (servers, workers,
# a browser), so four workers overlap those waits even on two cores (15 min in one process, 12 on two workers,
# 8.5 on four: docs/PERFORMANCE.md); each worker gets its own test database, VAR_DIR and Redis database
# (tests/conftest.py, pytest_xdist_setupnodes). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 4
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist load)

test: $(STAMP)
	$(VENV)/bin/pytest $(XDIST)

# The inner loop: everything but the tests that start processes, wait out timeouts or fuzz.
test-fast: $(STAMP)
	$(VENV)/bin/pytest $(XDIST) -m "not slow" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
