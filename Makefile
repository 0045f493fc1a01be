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

demo: $(STAMP)
	@scripts/get-fashion-mnist.sh $(FMNIST)
	$(BIN)/lowmode-preprocess build --source fashion-mnist --input $(FMNIST) --out $(DATA)
	$(BIN)/lowmode-preprocess info $(DATA)

clean-venv:
	rm -rf $(VENV)

# Single-node Slurm on this machine for slurm/ and tests/slurm (root; see slurm/README.md).
.PHONY: slurm-up slurm-down
slurm-up:
	scripts/slurm-up.sh

slurm-down:
	scripts/slurm-down.sh
