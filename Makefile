# One entry point per task; CI calls the same ones (.ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-quick bench-peers bench-load services tools clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## make demo: set up, then publish 500 posts to the simulator on the embedded store
demo: $(STAMP)
	$(BIN)/herald demo

## make test: set up, start the services the tests need, run every test
test: $(STAMP) services tools
	$(BIN)/pytest

## make lint: ruff and mypy (strict on the package)
lint: $(STAMP)
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/ruff format --check src tests bench deploy
	$(BIN)/mypy
	$(BIN)/mypy --explicit-package-bases deploy/grafana  # the dashboards generator, strict too

## make bench: docs/benchmarks.md's generated section and its plots (docs/img/), at the sizes
##   the docs quote (bench/quick.py --scale full: bursts of 20,000, a backlog of 1,000,000).
## make bench-quick: the same in a few minutes (--scale quick). Single scenarios, repeated:
##   $(BIN)/python bench/run.py --scenario burst --store both --reps 3
##   $(BIN)/python bench/drivers.py                   (asyncpg vs psycopg on the store's queries)
##   $(BIN)/python bench/sustained.py                 (10,000 posts a minute for 5 minutes)
bench: $(STAMP) services
	$(BIN)/python bench/quick.py --scale full

bench-quick: $(STAMP) services
	$(BIN)/python bench/quick.py --scale quick

## make bench-peers: Herald side by side with Celery, dramatiq, arq, procrastinate and the
##   seed design, same job, same simulator, interleaved rounds (docs/benchmarks.md). Installs
##   the optional peers group; PEERS_ARGS="--posts 5000 --rounds 1" for a quick look.
bench-peers: $(STAMP) services
	$(BIN)/python -m pip install --quiet -e '.[dev,peers]'
	$(BIN)/python -m pip install --quiet --no-deps 'arq>=0.26'  # pins redis<6: see pyproject
	$(BIN)/python -m bench.peers.run $(PEERS_ARGS)

## make bench-load: Locust users making an agency's API traffic (posts, listings, calendar
##   weeks, CSV imports) against a real `herald serve`, on SQLite then PostgreSQL: requests/s
##   and p50/p95/p99 per endpoint (docs/benchmarks.md). Installs the optional load group;
##   LOAD_ARGS="--store sqlite --users 20 --duration-s 20" for a quick look.
bench-load: $(STAMP) services
	$(BIN)/python -m pip install --quiet -e '.[dev,load]'
	$(BIN)/python bench/load/drive.py $(LOAD_ARGS)

services:
	@scripts/services.sh

# the command-line tools the tests call (kubectl and promtool for tests/deploy)
tools: $(STAMP)
	@VENV=$(VENV) scripts/tools.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info
