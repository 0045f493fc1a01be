# lowmode: `make demo` (main job) and `make test` (test suite) do all the set-up they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data/fashion-mnist
FMNIST ?= /usr/share/datasets/fashion-mnist

.PHONY: install test demo clean-venv

install: $(STAMP)

# Re-installs when pyproject.toml changes; the stamp makes repeated `make test` cheap.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dali,wandb,dev]'
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The main job: Fashion-MNIST -> paired shards -> baseline and lowmode training -> comparison table + plots.
# Rerunning resumes: finished shards and runs are kept (delete demo/ to start over).
DEMO ?= demo
demo: $(STAMP)
	@echo "== 1/4 Fashion-MNIST"
	@scripts/get-fashion-mnist.sh $(FMNIST)
	@echo "== 2/4 shards: $(DATA)"
	$(BIN)/lowmode-preprocess build --source fashion-mnist --input $(FMNIST) --out $(DATA) --workers 2
	$(BIN)/lowmode-preprocess info $(DATA)
	@echo "== 3/4 training: baseline, then lowmode (configs/fmnist_small_*.toml)"
	$(BIN)/lowmode-train --config configs/fmnist_small_baseline.toml --run-dir $(DEMO)/baseline --set data.dir=$(DATA)
	$(BIN)/lowmode-train --config configs/fmnist_small_lowmode.toml --run-dir $(DEMO)/lowmode --set data.dir=$(DATA)
	@echo "== 4/4 compare"
	$(BIN)/lowmode-compare $(DEMO)/baseline $(DEMO)/lowmode --out $(DEMO)

clean-venv:
	rm -rf $(VENV)

# Single-node Slurm on this machine for slurm/ and tests/slurm (root; see slurm/README.md).
.PHONY: slurm-up slurm-down
slurm-up:
	scripts/slurm-up.sh

slurm-down:
	scripts/slurm-down.sh
