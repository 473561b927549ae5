#!/usr/bin/env bash
# The small CPU experiment of docs/quality.md: photo -> Monet on monet2photo-mini (80 + 80 training
# images, 20 test photos), ngf 16, 4 blocks, 64 px crops, 30 epochs. Three variants: the untrained
# generator, the baseline CycleGAN, and the baseline + EMA + DiffAugment (two seeds each); then,
# one seed each: EMA alone, DiffAugment alone, and blur upsampling (model.antialias_up).
# KID and colour distance of G_B(testB photos) against the trainA Monets.
#   bash scripts/quality_cpu.sh [DATA_ROOT] [OUT]      (about 5 minutes a run on 2 idle cores)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/monet2photo-mini}
OUT=${2:-results/quality_cpu}
PY=${PY:-.venv/bin/python}
COMMON="data.root=$DATA data.dataset=null data.direction=BtoA data.load_size=72 data.crop_size=64 data.num_workers=0
  model.ngf=16 model.ndf=16 model.n_blocks=4 train.n_epochs=15 train.n_epochs_decay=15 train.precision=fp32
  train.device=cpu checkpoint.save_every=0 logging.log_every=80 logging.image_every=0 logging.wandb=disabled out_dir=$OUT"
declare -A VARIANT=(
  [untrained]="train.lr=1e-12 train.max_steps=1"
  [baseline]=""
  [ema_diffaug]="train.ema=0.999 train.diffaugment=color,translation,cutout"
  [ema]="train.ema=0.999"
  [diffaug]="train.diffaugment=color,translation,cutout"
  [antialias_up]="model.antialias_up=true"
)
RUNS="untrained_s0 baseline_s0 ema_diffaug_s0 baseline_s1 ema_diffaug_s1 ema_s0 diffaug_s0 antialias_up_s0"
for run in $RUNS; do
    name=${run%_s*}
    seed=${run##*_s}
    [ -f "$OUT/$run/last.pt" ] || $PY -m gan_style train name=$run train.seed=$seed $COMMON ${VARIANT[$name]}
    $PY -m gan_style eval --weights "$OUT/$run/last.pt" --direction BtoA --input "$DATA/testB" --real "$DATA/trainA" \
      --metrics kid,colour --kid-subset-size 20 --quiet --json "$OUT/$run.json" > /dev/null
done
$PY scripts/quality_report.py "$OUT" "$DATA"
