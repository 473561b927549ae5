"""``gan-style bench`` (also ``make bench`` and ``python -m gan_style.bench``): how fast we train and translate.

The command's wiring only: the options and presets are gan_style/bench/presets.py, the order of
a run gan_style/bench/run.py, and what is measured lives in gan_style/bench/, one module per
section. Each section is printed as a table and written to one JSON file with the machine, the versions and the settings (default ``bench_results/bench_<device>_<time>.json``):

- train: seconds per iteration and images/s after warm-up, peak memory, FLOPs per iteration
  (``torch.utils.flop_counter``), achieved TFLOP/s and the fraction of the device's peak. By
  default a *ladder*: the reference implementation's step (fp32, NCHW, eager, batch 1), then our
  step, then one change at a time (channels_last, bf16/fp16, torch.compile), then larger batches
  with the fastest settings. ``--grid`` measures every combination instead.
- data: the input pipeline alone (decode + albumentations, as in training), images/s for each
  number of DataLoader workers, and the decoders compared. Only when albumentations is
  importable: the training and translation sections use synthetic tensors and never import it.
- translate: ``gan_style.inference`` images/s at given sizes and precisions, and the time and
  peak memory of a large image translated in tiles and whole.
- methods: one training step of CycleGAN, CUT and FastCUT side by side (same size, precision,
  batch) and each one's speed-up over CycleGAN.

Sections after train come from the registry ``gan_style.bench.SECTIONS``.
Presets: ``cpu`` (a small model at 64 px: a few minutes on a laptop) and ``gpu`` (the paper's
256 px model). Every preset value can be overridden by an option.
"""

from __future__ import annotations

from ..bench.presets import add_arguments
from ..bench.run import main, run

__all__ = ["add_arguments", "main", "run"]

if __name__ == "__main__":
    raise SystemExit(main())
