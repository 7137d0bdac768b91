# The two commands of the README: `make demo` (set up and run) and `make test` (set up and test).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

NPM ?= npm
# The designer's front-end packages (bpmn-js), served from node_modules: no build step.
ASSETS := designer/node_modules/.installed

.PHONY: install demo test bench clean browser

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(ASSETS): designer/package.json designer/package-lock.json
	cd designer && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed $(ASSETS)

# Debian's Chromium for the designer's browser test (tests/test_designer_browser.py); without
# it that test skips, and under CI=true it fails.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -q chromium >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } \
	  || echo "chromium is not installed: the browser test will skip (and fail under CI=true)"

demo: install
	$(BIN)/ioc demo

test: install browser
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/pipeline.py

# End to end through the real processes on the local PostgreSQL and Redis (bench/load.py):
# embedded, Redis with 1 and 2 workers, as fast as possible, then at half the best rate (~8 min).
.PHONY: bench-load
bench-load: install
	$(BIN)/python bench/load.py --suite

# A worker's batches on the local PostgreSQL (bench/batches.py): statements and CPU per event.
.PHONY: bench-batches
bench-batches: install
	$(BIN)/python bench/batches.py

clean:
	rm -rf $(VENV) var .pytest_cache designer/node_modules test-artifacts
