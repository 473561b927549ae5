#!/usr/bin/env bash
# The prepared GPU benchmark (docs/benchmarks.md, "GPU"): one script, about 8 minutes on an H100.
#
#   bash scripts/gpu_bench.sh [RESULTS_DIR]        # from the repository root; default bench_results/
#   BENCH_ARGS="--device cpu --ngf 4 ..." ...      # appended to every bench command (a dry run on a CPU)
#
# For a machine with PyTorch (and torchvision, Pillow, numpy, PyYAML, tqdm) but without this
# project installed: it runs from the source tree. pydantic (needed by gan_style.config) and
# albumentations (needed only by the data-pipeline section) are installed from wheels in .whl/
# when they are missing; see docs/benchmarks.md for how to fill .whl/. Each stage has its own
# time limit, and the JSON files are rewritten after every measurement, so a stage cut short
# still leaves its figures.
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-${OUT:-bench_results}}
mkdir -p "$DIR"
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
start=$(date +%s)

# ---- set-up (seconds): missing pure-Python dependencies from carried wheels ----
if ! $PY -c "import pydantic, albumentations" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
$PY -c "import pydantic, yaml" || { echo "error: pydantic and PyYAML are needed: put their wheels in .whl/ (docs/benchmarks.md)"; exit 2; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  $PY -c "import albumentations; print('albumentations', albumentations.__version__)" 2>&1 | tail -1
} 2>&1 | tee "$DIR/gpu_env.txt"

# ---- stage 1 (~2 min): eager ladder at 256 px (reference -> our step -> channels_last -> bf16, fp16),
# batches 4/8/16 with the fastest eager settings, a profile, the data pipeline, translation,
# CycleGAN / CUT / FastCUT side by side (256 px, bf16, batch 1, eager) ----
timeout 270 $PY -m gan_style.cli.bench --preset gpu --compile off --batch-sizes 4,8,16 --profile \
  --out "$DIR/gpu_eager.json" ${BENCH_ARGS:-} 2>&1 | tee "$DIR/gpu_eager.txt"

# ---- stage 2 (~5 min): the ladder again (no reference, no fp16) with torch.compile added to the
# fastest eager settings, at batch 1 and 16 ----
# (each new batch size compiles anew: about a minute or two each)
timeout 330 $PY -m gan_style.cli.bench --preset gpu --no-reference --precisions bf16 --compile on --batch-sizes 16 \
  --only train --out "$DIR/gpu_compiled.json" ${BENCH_ARGS:-} 2>&1 | tee "$DIR/gpu_compiled.txt"

echo "gpu_bench.sh: done in $(( $(date +%s) - start )) s; results in $DIR/"
