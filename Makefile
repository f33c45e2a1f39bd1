# One entry point per task; CI calls the same ones (.ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-peers services clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## make demo: set up, then publish 500 posts to the simulator on the embedded store
demo: $(STAMP)
	$(BIN)/herald demo

## make test: set up, start the services the tests need, run every test
test: $(STAMP) services
	$(BIN)/pytest

## make lint: ruff and mypy (strict on the package)
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## make bench: throughput and lateness figures (see docs/benchmarks.md). On PostgreSQL too:
##   make services bench BENCH_ARGS="--scenario burst --store both"  (SQLite and PostgreSQL)
##   $(BIN)/python bench/drivers.py                   (asyncpg vs psycopg on the store's queries)
##   $(BIN)/python bench/sustained.py                 (10,000 posts a minute for 5 minutes)
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## make bench-peers: Herald side by side with Celery, dramatiq, arq, procrastinate and the
##   seed design, same job, same simulator, interleaved rounds (docs/benchmarks.md). Installs
##   the optional peers group; PEERS_ARGS="--posts 5000 --rounds 1" for a quick look.
bench-peers: $(STAMP) services
	$(BIN)/python -m pip install --quiet -e '.[dev,peers]'
	$(BIN)/python -m pip install --quiet --no-deps 'arq>=0.26'  # pins redis<6: see pyproject
	$(BIN)/python -m bench.peers.run $(PEERS_ARGS)

services:
	@scripts/services.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info
