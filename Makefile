# Two commands do all the set-up on a fresh machine:  make run  |  make test
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./data

.PHONY: setup run demo test bench chaos clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/saga-journey demo --data-dir $(DATA)

demo: run

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_runtime.py

chaos: setup
	$(BIN)/python bench/chaos.py --injections 1000

clean:
	rm -rf $(VENV) build *.egg-info
