# Two commands do everything: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FRACTAL_DATA_DIR ?= $(CURDIR)/data
DEMO_HOME ?= $(FRACTAL_DATA_DIR)/dagster
DEMO_DURATION ?= 900
DEMO_RATE ?= 2000
PORT ?= 3000

.PHONY: install test demo bench redis clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

redis: $(STAMP)
	$(BIN)/fractal redis start

demo: export DAGSTER_HOME = $(DEMO_HOME)
demo: $(STAMP)
	mkdir -p -m 700 $(FRACTAL_DATA_DIR) $(DAGSTER_HOME) && install -m 600 dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/fractal redis start
	$(BIN)/fractal simulate --symbols BTCUSDT,ETHUSDT,SOLUSDT --rate $(DEMO_RATE) --duration $(DEMO_DURATION) --speed 0
	$(BIN)/fractal materialize
	@echo "Dagster UI: http://127.0.0.1:$(PORT)"
	umask 077 && $(BIN)/dagster dev -m fractal_assets.definitions -h 127.0.0.1 -p $(PORT)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data
