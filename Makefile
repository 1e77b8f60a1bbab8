# The two set-up commands: `make demo` (default pipeline end to end) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/tiny.yaml
export HF_HUB_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false

.PHONY: demo ablation test lint format data install

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch pinned first: this exact version resolves to the local CPU wheel, not a multi-GB CUDA build
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/alignment run $(CONFIG)

# The mismatched-knowledge ablation: default vs model-aware ("I don't know") vs mismatched demonstrations.
ablation: $(BIN)/.installed
	$(BIN)/alignment ablation configs/tiny.yaml configs/tiny-idk.yaml configs/tiny-mismatch.yaml

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

data: $(BIN)/.installed
	$(BIN)/alignment world configs/tiny.yaml --out data
