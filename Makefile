# Two commands do all the set-up on a fresh machine:  make run  |  make test
# make run / make serve install only what running needs; make test (and setup) adds the test
# extras and Debian packages.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./data
NODE_TOOLS := tools/node/node_modules/.installed

.PHONY: setup run demo serve test bench chaos chaos-workers clean

# -qq: errors only (a site pip.conf with missing find-links/index folders otherwise prints a wall
# of warnings); PIP_FLAGS=-q shows them.
PIP_FLAGS ?= -qq --disable-pip-version-check --no-warn-script-location
PIP := $(BIN)/pip install $(PIP_FLAGS)

# What running needs: a venv with the package and its runtime dependencies (make run / serve).
$(BIN)/.runtime: pyproject.toml
	$(PY) -m venv $(VENV)
	$(PIP) -e .
	touch $@

# What testing needs on top: the test extras and the Debian packages (make test / setup).
$(BIN)/.installed: $(BIN)/.runtime
	bash scripts/install-system-deps.sh
	$(PIP) -e '.[test]'
	touch $@

$(NODE_TOOLS): tools/node/package-lock.json
	bash scripts/install-node-tools.sh
	[ ! -d tools/node/node_modules ] || touch $@

setup: $(BIN)/.installed $(NODE_TOOLS)

run: $(BIN)/.runtime
	$(BIN)/saga-journey demo --data-dir $(DATA)

demo: run

serve: $(BIN)/.runtime
	$(BIN)/saga-journey serve --create --data-dir $(DATA) --host 127.0.0.1 --port 8080 --insecure-dev

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_runtime.py
	$(BIN)/python bench/bench_metrics.py
	$(BIN)/python bench/bench_http.py

chaos: setup
	$(BIN)/python bench/chaos.py --injections 1000

chaos-workers: setup
	$(BIN)/python bench/chaos.py --client http --workers 2 --injections 200

clean:
	rm -rf $(VENV) build *.egg-info
