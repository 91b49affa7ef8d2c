# Two commands do everything: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The benchmarks' peers (arcticdb needs pandas<3) have their own lock and venv; the project
# itself is always measured in .venv, with its own locked packages.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
# `make lock` compiles the locks with uv from a venv of its own (uv is not needed to install).
LOCK_VENV := .venv-lock
UV_VERSION := 0.13.9
UV_STAMP := $(LOCK_VENV)/.uv-$(UV_VERSION)
LOCK_FLAGS ?=
COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_FLAGS)
export FRACTAL_DATA_DIR ?= $(CURDIR)/data
DEMO_HOME ?= $(FRACTAL_DATA_DIR)/dagster
DEMO_DURATION ?= 900
DEMO_RATE ?= 2000
PORT ?= 3000

.PHONY: install test test-fast demo bench redis lock clean

# Everything from the hashed locks: pip first (its own lock), then every dependency, then the
# project itself, editable, with no dependency resolution and the locked setuptools.
$(STAMP): pyproject.toml requirements/pip.lock requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(BENCH_STAMP): pyproject.toml requirements/pip.lock requirements/bench.lock
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/pip.lock
	$(BENCH_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/bench.lock
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(BENCH_STAMP)

install: $(STAMP)

# The whole suite, two workers (one per core). Tests that need a tool the machine lacks skip with a reason.
test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadgroup

# Everything that needs no server but the system (or one embedded) Redis: a quick loop while developing.
test-fast: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadgroup -m "not (slow or infra or browser or ceph or redis_cluster or tls or postgres)"

redis: $(STAMP)
	$(BIN)/fractal redis start

demo: export DAGSTER_HOME = $(DEMO_HOME)
demo: $(STAMP)
	mkdir -p -m 700 $(FRACTAL_DATA_DIR) $(DAGSTER_HOME) && install -m 600 dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/fractal redis start
	$(BIN)/fractal simulate --symbols BTCUSDT,ETHUSDT,SOLUSDT --rate $(DEMO_RATE) --duration $(DEMO_DURATION) --speed 0
	-$(BIN)/fractal materialize  # a failed run is reported; the UI is served all the same
	@echo "Dagster UI: http://127.0.0.1:$(PORT)"
	umask 077 && $(BIN)/dagster dev -m fractal_assets.definitions -h 127.0.0.1 -p $(PORT)

bench: $(STAMP) $(BENCH_STAMP)
	FRACTAL_PEER_PYTHON=$(CURDIR)/$(BENCH_VENV)/bin/python $(BIN)/python -m bench $(BENCH)

$(UV_STAMP):
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)
	touch $(UV_STAMP)

# Refreshes requirements/*.lock from pyproject.toml and requirements/*.in, keeping every pin that
# still fits; `make lock LOCK_FLAGS=--upgrade` (or --upgrade-package NAME) moves pins forward.
lock: $(UV_STAMP)
	$(COMPILE) requirements/pip.in -o requirements/pip.lock
	$(COMPILE) pyproject.toml requirements/build.in --extra dev -o requirements/dev.lock
	$(COMPILE) pyproject.toml requirements/build.in --extra bench -o requirements/bench.lock

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(LOCK_VENV) data
