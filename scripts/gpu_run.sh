#!/usr/bin/env bash
# The prepared GPU run (issue: "Run gan_style on a real GPU"): correctness, speed and a first
# photo -> Monet quality figure, in about 9 minutes on one H200. Figures: docs/benchmarks.md, "GPU",
# and docs/quality.md.
#
#   bash scripts/gpu_run.sh [OUT_DIR]          # from the repository root; default gpu_results/
#   GPU_RUN_DRY=1 bash scripts/gpu_run.sh /tmp/g   # dry run on a CPU: tiny sizes, a few seconds per stage
#
# Needs PyTorch; the rest comes from wheels in .whl/ (pydantic, albumentations, pytest-timeout; see
# docs/benchmarks.md) and the Monet data from .gpu_data/monet-kaggle/ (trainA, trainB; git-ignored).
# Stages, each with its own time limit (seconds, overridable): checks (CHECK_S), eager speed
# (EAGER_S), quality training (QUALITY_S), compiled speed (COMPILE_S). Each stage writes its files
# under OUT_DIR/results/ and the folder is packed into OUT_DIR/results.tgz after every stage, so a
# run cut short keeps what it measured. The trained photo -> Monet generator (EMA weights,
# safetensors) is split into 15 MB parts OUT_DIR/G_BtoA.safetensors.part-* (the device tool
# brings back files of at most 16 MiB); `cat` joins them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=$(realpath -m "${1:-${OUT:-gpu_results}}")
R=$OUT_DIR/results
mkdir -p "$R"
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=disabled PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
DATA=${GPU_DATA:-.gpu_data/monet-kaggle}
start=$(date +%s)
pack() { tar -czf "$OUT_DIR/results.tgz" -C "$OUT_DIR" results; echo "[$(( $(date +%s) - start )) s] $1"; }

if [ -n "${GPU_RUN_DRY:-}" ]; then  # a CPU dry run: every stage, tiny sizes
  DEVICE=cpu; CHECK_S=${CHECK_S:-200}; EAGER_S=${EAGER_S:-200}; QUALITY_S=${QUALITY_S:-40}; COMPILE_S=${COMPILE_S:-10}
  BENCH="--device cpu --threads 1 --ngf 4 --ndf 4 --n-blocks 1 --size 32 --precisions bf16 --iters 1 --repeats 1 \
    --warmup 1 --translate-sizes 32 --tiled 100x60 --tile 32 --data-images 4 --workers 0,1 --methods-precision bf16"
  QUALITY="model.ngf=8 model.ndf=8 model.n_blocks=2 data.load_size=72 data.crop_size=64 data.num_workers=1 train.device=cpu"
  PYTEST="tests/test_cuda.py tests/test_inference.py"
else
  DEVICE=cuda; CHECK_S=${CHECK_S:-130}; EAGER_S=${EAGER_S:-150}; QUALITY_S=${QUALITY_S:-150}; COMPILE_S=${COMPILE_S:-100}
  BENCH=""; QUALITY="data.num_workers=12"
  PYTEST="tests -n 4"
fi

# ---- set-up: missing pure-Python dependencies from carried wheels ----
if ! $PY -c "import pydantic, albumentations, pytest_timeout" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  $PY -c "import albumentations, pydantic; print('albumentations', albumentations.__version__, 'pydantic', pydantic.__version__)" 2>&1 | tail -1
  nproc; git rev-parse HEAD 2>/dev/null
} > "$R/env.txt" 2>&1
cat "$R/env.txt"
pack "set-up"

$PY -c "import xdist" 2>/dev/null || PYTEST=${PYTEST/-n 4/}  # pytest-xdist, where installed

# ---- 1. correctness: the test suite with CUDA visible, in parallel with the smoke trains and resumes ----
timeout -k 10 "$CHECK_S" $PY -m pytest -q -p no:cacheprovider --timeout 120 $PYTEST \
  --ignore tests/test_app.py --ignore tests/test_app_browser.py --ignore tests/test_video.py \
  --ignore tests/test_metrics.py --ignore tests/test_monitor.py \
  --deselect tests/test_train.py::test_make_train_with_data_root \
  --deselect tests/test_cut.py::test_bundled_configs_ship_in_the_wheel > "$R/pytest.txt" 2>&1 &
tests_pid=$!
timeout -k 10 "$CHECK_S" $PY scripts/gpu_checks.py "$R/checks" --device $DEVICE --timeout $(( CHECK_S - 15 )) \
  > "$R/checks.txt" 2>&1
wait $tests_pid; echo "pytest exit $?" >> "$R/pytest.txt"
rm -rf "$R/checks/runs" "$R/checks/toy"
tail -3 "$R/pytest.txt"; grep -c PASS "$R/checks.txt"; grep FAIL "$R/checks.txt"
pack "checks"

# ---- 2. speed, eager: reference -> our step -> channels_last -> bf16 / fp16, batches, profile,
# data pipeline, translation (256, 1024, a tiled 4000x3000), the methods side by side, UNSB per step ----
timeout -k 10 "$EAGER_S" $PY -m gan_style.cli.bench --preset gpu --compile off --batch-sizes 4,8,16,32 --profile \
  --only train,data,translate,methods,steps \
  --data-root "$DATA" --out "$R/bench_eager.json" $BENCH > "$R/bench_eager.txt" 2>&1
pack "eager speed"

# ---- 3. quality: photo -> Monet on monet-kaggle (300 Monets, 2000 photos) for QUALITY_S seconds of
# wall clock, bf16, channels_last, batch 4 (lr x sqrt 4), EMA + DiffAugment (configs/monet_kaggle.yaml);
# SIGTERM ends it and saves last.pt; the EMA generator is exported for FID/KID/MiFID on a CPU ----
Q=/tmp/gpu_quality
rm -rf $Q
timeout -s TERM -k 60 "$QUALITY_S" $PY -m gan_style train -c configs/monet_kaggle.yaml data.root="$DATA" out_dir=$Q \
  name=monet_kaggle_gpu eval.every=0 eval.best=null logging.wandb=disabled logging.image_every=0 \
  logging.log_every=50 checkpoint.save_every=0 train.channels_last=true train.batch_size=4 train.lr_scaling=sqrt \
  $QUALITY > "$R/quality_train.log" 2>&1
echo "train exit $?" >> "$R/quality_train.log"
cp $Q/monet_kaggle_gpu/{metrics.jsonl,run_info.json,config.yaml} "$R/" 2>/dev/null
cp $Q/monet_kaggle_gpu/samples/*.png "$R/" 2>/dev/null
$PY -m gan_style export --weights $Q/monet_kaggle_gpu/last.pt --direction BtoA --format safetensors \
  --output "$R/G_BtoA.safetensors" > "$R/export.txt" 2>&1
if [ -f "$R/G_BtoA.safetensors" ]; then
  sha256sum "$R/G_BtoA.safetensors" > "$R/G_BtoA.sha256"
  split -b 15M "$R/G_BtoA.safetensors" "$OUT_DIR/G_BtoA.safetensors.part-" && rm "$R/G_BtoA.safetensors"
fi
tail -c 600 "$R/quality_train.log" | tr '\r' '\n' | tail -4
pack "quality"

# ---- 4. speed, compiled: torch.compile on the fastest eager settings, at batch 1 and the best batch ----
BEST_BATCH=$($PY -c "
import json, sys
rows = [r for r in json.load(open(sys.argv[1])).get('train', []) if 'img_per_s' in r and not r['reference']]
print(max(rows, key=lambda r: r['img_per_s'])['batch'] if rows else 16)" "$R/bench_eager.json" 2>/dev/null || echo 16)
[ "$BEST_BATCH" = 1 ] && BEST_BATCH=16
timeout -k 10 "$COMPILE_S" $PY -m gan_style.cli.bench --preset gpu --no-reference --precisions bf16 --compile on \
  --batch-sizes "$BEST_BATCH" --only train --out "$R/bench_compiled.json" $BENCH > "$R/bench_compiled.txt" 2>&1
pack "compiled speed (batch $BEST_BATCH)"
grep -E "^\s+train " "$R/bench_eager.txt" "$R/bench_compiled.txt" | cut -c1-160
echo "gpu_run.sh: done in $(( $(date +%s) - start )) s; results in $OUT_DIR"
