"""The benchmark behind ``gan-style bench``, one module per thing it measures (``python -m
gan_style.bench`` runs it too; gan_style/cli/bench.py only wires the command).

presets.py      the options, their presets and their checks (``add_arguments``, ``resolve_args``)
run.py          the order of a run: train, its profile, then ``SECTIONS``; the JSON file

common.py       timing, synchronisation, peak memory, machine info, device peaks, the JSON file
training.py     the training ladder / grid (``ReferenceStep``, ``TrainCase``), Adam alone, FLOPs, profile
data.py         the input pipeline        translation.py   ``gan_style.inference``
methods.py      CycleGAN, CUT and FastCUT side by side
video.py        video translation: decode + translate + encode (needs the ``video`` extra)
steps.py        multi-step generators (UNSB) at each number of steps
strength.py     what loss-conditional training costs: steps and translation, conditioned vs plain
clips.py        synthetic video clips (moving shapes + a sine-wave sound) for it and for the tests
style.py        gan-style stylize at 256/512/1024 px beside plain VGG19 Gatys
cpu_paths.py    CPU translation paths side by side (fp32, bf16, bf16-blocks, compile, ONNX Runtime)
memory.py       translate and stylize --max-memory: the estimated peak against the measured one
report.py       the tables

``SECTIONS`` is the registry of the sections after training (which the CLI runs itself: it
streams its rows and writes three result keys). Name (as ``--only`` spells it) -> ``Section``:
``run(base_config, device, args)`` returns the JSON-able result kept as ``results[name]``;
``format(result)`` gives the table's lines (default: a title and one line per row, for a section
that returns a list of flat dicts). ``args`` holds every option, already resolved from the
preset. A new section is one line, e.g.::

    "video": Section("video", lambda base, device, args: bench_video(device, size=args.size)),

Sections run in this order, each only when ``--only`` lists it (the default lists them all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from .data import bench_data
from .memory import bench_memory
from .methods import bench_methods
from .steps import bench_steps
from .strength import bench_strength
from .report import format_data, format_methods, format_rows, format_translate
from .translation import bench_translate


class Section(NamedTuple):
    title: str  # printed while it runs, and above its lines when it has no format of its own
    run: Callable[..., object]
    format: Callable[[object], list[str]] | None = None

    def lines(self, result: object) -> list[str]:
        return self.format(result) if self.format else [self.title, *format_rows(result)]


SECTIONS: dict[str, Section] = {
    "data": Section("data pipeline", lambda base, device, args: bench_data(base, args), format_data),
    "translate": Section("translation", bench_translate, format_translate),
    "methods": Section("methods side by side", bench_methods, format_methods),
    "steps": Section("multi-step generators: s per image at each number of steps (fp32, untiled)", bench_steps),
    "strength": Section("strength-conditioned against plain: s per training step and per translated image",
                        bench_strength),
    "video": Section("video translation (frames/s)", lambda base, device, args: _video(base, device)),
    "style": Section("style from one painting: stylize vs VGG19 Gatys (s per photo)",
                     lambda base, device, args: _style(device)),
    "cpu_paths": Section("CPU translation paths, 1024x768, 9 blocks (s/image, error vs fp32)",
                         lambda base, device, args: _cpu_paths(device)),
    "memory": Section("memory: one image's estimated peak (translate --max-memory) against the measured one",
                      lambda base, device, args: bench_memory()),
}


def _style(device) -> list[dict]:
    from .style import bench_style  # the Inception weights are located only when this section runs

    return bench_style(device)


def _cpu_paths(device) -> list[dict]:
    from .cpu_paths import bench_cpu_paths

    if device.type != "cpu":
        return []  # the section compares CPU paths; a GPU's figures are in the training and translate sections
    return bench_cpu_paths(repeats=1)


def _video(base, device) -> list[dict]:
    from .video import bench_video  # PyAV is imported only when this section runs

    frames = 32 if device.type == "cuda" else 2  # a 720p frame takes ~10 s on a 2-core CPU
    return bench_video(device, frames=frames, ngf=base.model.ngf, n_blocks=base.model.n_blocks, batch_size=2)
