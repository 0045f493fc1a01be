# lowmode: `make demo` (main job) and `make test` (test suite) do all the set-up they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data/fashion-mnist
FMNIST ?= /usr/share/datasets/fashion-mnist

.PHONY: install test demo clean-venv gpu-check

install: $(STAMP)

# Re-installs when pyproject.toml changes; the stamp makes repeated `make test` cheap.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dali,wandb,dev,zoo]'
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The main job: Fashion-MNIST -> paired shards -> baseline (two budgets), lowmode's default low mode (the
# adaptive schedule, configs/fmnist_small_lowmode.toml) and the paper's form (configs/fmnist_small_paper.toml)
# -> accuracy-vs-time frontier, Table 1 and plots.
# Rerunning resumes: finished shards and runs are kept (delete demo/ to start over).
DEMO ?= demo
TRAIN := $(BIN)/lowmode-train --set data.dir=$(DATA)
demo: $(STAMP)
	@echo "== 1/4 Fashion-MNIST"
	@scripts/get-fashion-mnist.sh $(FMNIST)
	@echo "== 2/4 shards: $(DATA)"
	$(BIN)/lowmode-preprocess build --source fashion-mnist --input $(FMNIST) --out $(DATA) --workers 2
	$(BIN)/lowmode-preprocess info $(DATA)
	@echo "== 3/4 training (configs/fmnist_small_*.toml): baseline at 12 and 6 epochs, the adaptive low mode, the paper's"
	$(TRAIN) --config configs/fmnist_small_baseline.toml --run-dir $(DEMO)/baseline
	$(TRAIN) --config configs/fmnist_small_baseline.toml --run-dir $(DEMO)/baseline_6ep \
	    --set train.epochs=6 --set 'optim.lr_milestones_epochs=[2, 4]'
	$(TRAIN) --config configs/fmnist_small_lowmode.toml --run-dir $(DEMO)/lowmode
	$(TRAIN) --config configs/fmnist_small_paper.toml --run-dir $(DEMO)/paper
	@echo "== 4/4 compare: frontier (time saved at equal accuracy) and the paper's Table 1"
	$(BIN)/lowmode-compare $(DEMO)/baseline $(DEMO)/baseline_6ep $(DEMO)/lowmode $(DEMO)/paper --frontier --out $(DEMO)

clean-venv:
	rm -rf $(VENV)

# Every GPU path in one call, on a machine with one NVIDIA GPU: torch preinstalled, nothing installed here
# (no venv set-up; DALI checks are skipped without DALI). One JSON per check + summary.json under $(OUT);
# without CUDA the CPU-capable checks run and the rest are listed as skipped (exit 0). scripts/gpu_check.py
# tells the checks; e.g. make gpu-check OUT=/tmp/gc GPU_CHECK_ARGS="--only selfcheck,loop_bench".
OUT ?= gpu-check
GPU_PYTHON ?= $(shell test -x $(BIN)/python && echo $(BIN)/python || command -v python3)
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py --out $(OUT) $(GPU_CHECK_ARGS)

# Single-node Slurm on this machine for slurm/ and tests/slurm (root; see slurm/README.md).
.PHONY: slurm-up slurm-down
slurm-up:
	scripts/slurm-up.sh

slurm-down:
	scripts/slurm-down.sh
