# gan_style: `make train DOMAIN=monet` and `make test` work on a fresh clone.
# The virtual environment is created on first use and reinstalled only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

DOMAIN      ?= monet
CONFIG      ?= configs/$(DOMAIN).yaml
DATA_ROOT   ?=
ARGS        ?=
GPUS        ?= 1
NNODES      ?= 1
NODE_RANK   ?= 0
MASTER_ADDR ?= 127.0.0.1
MASTER_PORT ?= 29500
PYTEST_ARGS ?=

TRAIN_ARGS = -c $(CONFIG) $(if $(DATA_ROOT),data.root=$(DATA_ROOT)) $(ARGS)
ifeq ($(GPUS)$(NNODES),11)
  TRAIN_CMD = $(BIN)/gan-style train
else
  TRAIN_CMD = $(BIN)/torchrun --nproc_per_node=$(GPUS) --nnodes=$(NNODES) --node_rank=$(NODE_RANK) \
              --master_addr=$(MASTER_ADDR) --master_port=$(MASTER_PORT) -m gan_style train
endif

.PHONY: help setup train test demo fetch translate export eval bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,export,metrics]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install gan_style with all extras

train: setup  ## train DOMAIN (configs/$(DOMAIN).yaml); DATA_ROOT=..., ARGS="key=value ...", GPUS=N
	$(TRAIN_CMD) $(TRAIN_ARGS)

test: setup  ## run the whole test suite (CPU)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: setup  ## offline demo: toy dataset + tiny model, about 3 minutes on a CPU
	$(BIN)/python -m gan_style.toydata datasets/toy
	$(BIN)/gan-style train -c configs/tiny.yaml resume=auto $(ARGS)
	@echo "samples: runs/tiny/samples/ (rows: real | translated | reconstructed)"

fetch: setup  ## download the dataset of DOMAIN without training
	$(BIN)/python -c "from gan_style.config import load_config; from gan_style.download import fetch_cyclegan_dataset as f; \
	c = load_config('$(CONFIG)', [$(if $(DATA_ROOT),'data.root=$(DATA_ROOT)')]); f(c.data.dataset, c.data.root, c.data.url)"

# ---- translate / export (issue: translate & export) ----
CKPT      ?=
INPUT     ?=
OUTPUT    ?=
DIRECTION ?=
FORMAT    ?= safetensors

# ---- eval / bench ----

clean:  ## remove the virtual environment (runs/ and datasets/ are kept)
	rm -rf $(VENV)
