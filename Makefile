# Two commands do all the set-up on a fresh machine:  make run  |  make test
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./data
NODE_TOOLS := tools/node/node_modules/.installed

.PHONY: setup run demo serve test bench chaos clean

$(BIN)/.installed: pyproject.toml
	bash scripts/install-system-deps.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(NODE_TOOLS): tools/node/package-lock.json
	bash scripts/install-node-tools.sh
	[ ! -d tools/node/node_modules ] || touch $@

setup: $(BIN)/.installed $(NODE_TOOLS)

run: setup
	$(BIN)/saga-journey demo --data-dir $(DATA)

demo: run

serve: setup
	$(BIN)/saga-journey serve --create --data-dir $(DATA) --host 127.0.0.1 --port 8080 --insecure-dev

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_runtime.py
	$(BIN)/python bench/bench_metrics.py
	$(BIN)/python bench/bench_http.py

chaos: setup
	$(BIN)/python bench/chaos.py --injections 1000

clean:
	rm -rf $(VENV) build *.egg-info
