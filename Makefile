# gan_style: `make train DOMAIN=monet` and `make test` work on a fresh clone.
# The virtual environment is created on first use and reinstalled only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

DOMAIN      ?= monet
CONFIG      ?= configs/$(DOMAIN).yaml
DATA_ROOT   ?=
STYLE       ?=
ARGS        ?=
GPUS        ?= 1
NNODES      ?= 1
NODE_RANK   ?= 0
MASTER_ADDR ?= 127.0.0.1
MASTER_PORT ?= 29500
MAX_RESTARTS ?= 0
PYTEST_ARGS ?=

# torchrun restarts all workers after a failure (MAX_RESTARTS > 0): they must continue from last.pt.
TRAIN_ARGS = -c $(CONFIG) $(if $(DATA_ROOT),data.root=$(DATA_ROOT)) $(if $(STYLE),'style.paintings=[$(STYLE)]') $(if $(filter-out 0,$(MAX_RESTARTS)),resume=auto) $(ARGS)
ifeq ($(GPUS)$(NNODES)$(MAX_RESTARTS),110)
  TRAIN_CMD = $(BIN)/gan-style train
else ifeq ($(NNODES),1)
  # One machine: --standalone picks a free port, so two jobs on one host do not collide.
  TRAIN_CMD = $(BIN)/torchrun --standalone --nproc_per_node=$(GPUS) --max_restarts=$(MAX_RESTARTS) -m gan_style train
else
  TRAIN_CMD = $(BIN)/torchrun --nproc_per_node=$(GPUS) --nnodes=$(NNODES) --node_rank=$(NODE_RANK) \
              --master_addr=$(MASTER_ADDR) --master_port=$(MASTER_PORT) --max_restarts=$(MAX_RESTARTS) -m gan_style train
endif

.PHONY: help setup train test lint demo fetch translate stylize export eval bench serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,export,metrics,video,app,science,slides,bio,cpu]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install gan_style with all extras

train: setup  ## train DOMAIN (configs/$(DOMAIN).yaml); DATA_ROOT=..., STYLE=painting (method: style), ARGS="key=value ...", GPUS=N NNODES= NODE_RANK= MASTER_ADDR= MAX_RESTARTS=
	$(TRAIN_CMD) $(TRAIN_ARGS)

test: setup lint  ## lint (ruff, the import layers), then the whole test suite (CPU)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup  ## ruff and the layer contract of docs/architecture.md (lint-imports)
	$(BIN)/ruff check gan_style tests scripts
	$(BIN)/lint-imports

demo: setup  ## offline demo: toy dataset + tiny model, about 3 minutes on a CPU
	$(BIN)/python -m gan_style.data.toydata datasets/toy
	$(BIN)/gan-style train -c configs/tiny.yaml resume=auto $(ARGS)
	@echo "samples: runs/tiny/samples/ (rows: real | translated | reconstructed)"

fetch: setup  ## download the dataset of DOMAIN without training
	$(BIN)/python -c "from gan_style.config import load_config; from gan_style.data.fetch import fetch_cyclegan_dataset as f; \
	c = load_config('$(CONFIG)', [$(if $(DATA_ROOT),'data.root=$(DATA_ROOT)')]); f(c.data.dataset, c.data.root, c.data.url)"

# ---- translate / export (issue: translate & export) ----
CKPT      ?=
INPUT     ?=
OUTPUT    ?=
DIRECTION ?=
FORMAT    ?= safetensors
WEIGHTS    = $(if $(CKPT),$(CKPT),runs/$(DOMAIN)/last.pt)

translate: setup  ## translate DOMAIN's run (or CKPT=) on its test photos -> results/; INPUT=file|dir (photos, videos) OUTPUT=dir DIRECTION=BtoA
	$(BIN)/gan-style translate --weights $(WEIGHTS) $(if $(INPUT),--input $(INPUT)) $(if $(OUTPUT),--output $(OUTPUT)) \
	  $(if $(DIRECTION),--direction $(DIRECTION)) $(ARGS)

export: setup  ## export DOMAIN's (or CKPT=) generator -> exports/; DIRECTION=BtoA FORMAT="safetensors onnx torchscript"
	$(BIN)/gan-style export --weights $(WEIGHTS) --format $(FORMAT) $(if $(DIRECTION),--direction $(DIRECTION)) \
	  $(if $(OUTPUT),--output $(OUTPUT)) $(ARGS)

# ---- style from one painting ----
CONTENT ?=

stylize: setup  ## a painting of CONTENT (photos: files/folders) from STYLE (one or more paintings) -> results/stylized/; ARGS="--strength 0.7 ..."
	$(BIN)/gan-style stylize --content $(CONTENT) --style $(STYLE) $(if $(OUTPUT),--output $(OUTPUT)) $(ARGS)

# ---- eval / bench ----
# make eval DOMAIN=monet                 translate the test set with runs/$(DOMAIN)/last.pt (or CKPT=...)
# make eval DOMAIN=monet BEST=1          best.pt (eval.best) and last.pt side by side (or CKPT="a.pt b.pt")
# make eval FAKE=dir REAL=dir            compare two image folders
# make eval HALVES=dir                   two halves of one folder: the "same distribution" values
REAL   ?=
FAKE   ?=
HALVES ?=
EVAL_CKPT = $(or $(CKPT),$(if $(BEST),runs/$(DOMAIN)/best.pt runs/$(DOMAIN)/last.pt,runs/$(DOMAIN)/last.pt))
EVAL_WHAT = $(if $(HALVES),--halves $(HALVES),$(if $(FAKE),--fake $(FAKE),--weights $(EVAL_CKPT)))

eval: setup  ## FID/KID/MiFID + colour/cycle metrics: DOMAIN=monet, CKPT=... (several: side by side), BEST=1, FAKE=dir REAL=dir, HALVES=dir; ARGS=...
	$(BIN)/gan-style eval $(EVAL_WHAT) $(if $(REAL),--real $(REAL)) $(if $(INPUT),--input $(INPUT)) \
	  $(if $(DIRECTION),--direction $(DIRECTION)) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(ARGS)

bench: setup  ## speed of training, data and translation: table + bench_results/*.json; ARGS="--preset gpu ..."
	$(BIN)/gan-style bench $(ARGS)

# ---- web app ----
HOST ?= 127.0.0.1
PORT ?= 7860

serve: setup  ## web app on http://127.0.0.1:7860 (HOST=, PORT=) with every model in runs/, exports/, the zoo; ARGS="--weights ..."
	$(BIN)/gan-style serve --host $(HOST) --port $(PORT) $(ARGS)

clean:  ## remove the virtual environment (runs/ and datasets/ are kept)
	rm -rf $(VENV)
