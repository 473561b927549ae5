"""``gan-style fetch NAME --root DIR``: download and unpack an official CycleGAN dataset."""

from __future__ import annotations

import argparse
import sys

from ..io.download import DownloadError
from ..data.fetch import CYCLEGAN_DATASETS, fetch_cyclegan_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help=f"one of: {', '.join(CYCLEGAN_DATASETS)}")
    parser.add_argument("--root", help="where to put it (default: datasets/NAME)")
    parser.add_argument("--url", help="download from here instead of the reference's server (http, https or file)")


def run(args: argparse.Namespace) -> int:
    root = args.root or f"datasets/{args.name}"
    try:
        path = fetch_cyclegan_dataset(args.name, root, args.url)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.name}: ready in {path}")
    return 0
