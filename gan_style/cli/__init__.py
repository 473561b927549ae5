"""The ``gan-style`` command. Each subcommand lives in its own module, imported only when used,
so ``gan-style translate`` never imports training code (and starts fast).

The registry is a plain dict: name -> (module, one-line help). A module provides
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..logs import show_warnings

COMMANDS = {
    "train": ("gan_style.cli.train", "train a model (any method) from a config (see configs/)"),
    "fetch": ("gan_style.cli.fetch", "download an official CycleGAN dataset"),
    "translate": ("gan_style.cli.translate", "translate images with a trained, exported or pretrained generator"),
    "stylize": ("gan_style.cli.stylize", "a painting of your photos from one painting (Gatys; no training)"),
    "export": ("gan_style.cli.export", "export a generator to safetensors, TorchScript or ONNX"),
    "eval": ("gan_style.cli.eval", "measure FID, KID, MiFID and cycle/colour metrics"),
    "bench": ("gan_style.cli.bench", "benchmark training and translation speed"),
    "serve": ("gan_style.cli.serve", "web app: translate photos in the browser (needs gan_style[app])"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gan-style", description="Image style translation: unpaired (CycleGAN, CUT, FastCUT) and from one painting.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"gan_style {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    argv = sys.argv[1:] if argv is None else argv
    # Build only the chosen subcommand's parser (imports stay minimal); list all in --help.
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            modules[name] = importlib.import_module(module_name)
            modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    show_warnings()  # library warnings (logging) as "warning: ..." lines on stderr
    return modules[args.command].run(args)
