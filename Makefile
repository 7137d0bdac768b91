# The two commands of the README: `make demo` (set up and run) and `make test` (set up and test).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/ioc demo

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) var .pytest_cache
