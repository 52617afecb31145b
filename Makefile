# RDMT developer commands. Each target sets up the environment it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast test-containers bench calibrate lint clean

$(STAMP): libs/rdmt_core/pyproject.toml services/pyproject.toml
	@echo "Setting up $(VENV): installing RDMT and its dependencies (a few minutes the first time)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e 'libs/rdmt_core[dev]' -e services
	touch $(STAMP)

## demo: set up, then monitor synthetic full-size deliveries of every monitored type (WFI01..WFI18) on the embedded store
demo: $(STAMP)
	$(BIN)/rdmt demo --output demo-output

## test: set up (with Debian's Chromium for the dashboard's browser tests), then run the test suite
test: $(STAMP)
	bash scripts/install-browser.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-fast: unit tests only, no full-size data and no broker (about 3 minutes on 2 cores)
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m 'not slow' $(PYTEST_ARGS)

## test-containers: opt-in tier with a ClickHouse server and Kafka from testcontainers (needs Docker)
test-containers: $(STAMP)
	$(BIN)/python -m pip install --quiet -e 'libs/rdmt_core[containers]'
	RDMT_CONTAINERS=1 $(BIN)/python -m pytest tests/containers -rs $(PYTEST_ARGS)

## bench: speed and memory of the reference-file and Level-2 monitors on full-size files, a burst through all services, start-up and recovery times
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_dark.py
	$(BIN)/python benchmarks/bench_reference.py
	$(BIN)/python benchmarks/bench_l2.py
	$(BIN)/python benchmarks/bench_burst.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_recovery.py
	$(BIN)/python benchmarks/bench_dashboard.py

## calibrate: false-alarm rates and sensitivities of the Level-2 monitors on realistic images (galsim.roman PSFs; ~15 minutes)
calibrate: $(STAMP)
	$(BIN)/python benchmarks/calibrate_one_over_f.py
	$(BIN)/python benchmarks/calibrate_background.py
	$(BIN)/python benchmarks/calibrate_psf_shape.py

lint: $(STAMP)
	$(BIN)/ruff check libs services tests benchmarks schemas

clean:
	rm -rf $(VENV) demo-output bench-output .pytest_cache
