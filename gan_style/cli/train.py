"""``gan-style train``: load and validate the config at the boundary, then train.

Errors a user can fix (config, data, checkpoint, download) are printed as one line, without a
traceback; a signal or a non-finite loss exits non-zero with a message saying what was saved.
"""

from __future__ import annotations

import argparse
import sys

from ..io.checkpoint import CheckpointError
from ..config import ConfigError
from ..data.dataset import DataError
from ..io.download import DownloadError
from ..io.images import ImageReadError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..methods import METHODS, every_config_key

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    keys = every_config_key()
    width = max(len(key) for key, *_ in keys)
    parser.epilog = (f"methods (the `method` key): {', '.join(METHODS)}\n"
                     "config keys (default) — set in the YAML file or as KEY=VALUE; [only some methods]:\n") + "\n".join(
        f"  {key:<{width}}  {default!s:<22} {desc}{f' [{chr(47).join(owners)}]' if owners else ''}"
        for key, default, desc, owners in keys
    )
    parser.add_argument("--config", "-c", help="YAML config file, or a bundled config's name: monet, horse2zebra_cut, "
                        "monet_fastcut... (see --list-configs; default: built-in defaults)")
    parser.add_argument("--list-configs", action="store_true", help="list the bundled configs and exit")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="override config keys by dotted name, e.g. train.lr=1e-4 data.root=/data/monet2photo resume=auto",
    )  # fmt: skip
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    if args.list_configs:
        from ..config import bundled_configs, describe_config

        for name, path in bundled_configs().items():
            print(f"{name:<22} {describe_config(path)}")
        return 0
    from ..methods import load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    from ..training.loop import TrainingStopped, train

    try:
        train(cfg)
    except TrainingStopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        return e.exit_code
    except (ConfigError, DataError, CheckpointError, DownloadError, ImageReadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: stopped without saving; the last saved checkpoint is intact", file=sys.stderr)
        return 130
    return 0
