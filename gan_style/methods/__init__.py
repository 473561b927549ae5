"""Training methods: one file each, plus its line in ``METHODS``. Each is a training state with
the small interface the one loop calls (methods/base.py ``Method``; docs/architecture.md).

The config type is the union of the methods' config classes, told apart by ``method``: the
loaders here validate against it (the first method is the default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config, all_config_keys, read_config, validate_config
from .base import Method, TrainingData, generators
from .cut import CUT, FastCUT
from .cyclegan import CycleGAN
from .style import StyleTransfer
from .unsb import UNSB

METHODS: dict[str, type[Method]] = {"cyclegan": CycleGAN, "cut": CUT, "fastcut": FastCUT, "style": StyleTransfer,
                                    "unsb": UNSB}


def config_types() -> dict[str, type[Config]]:
    return {name: method.config_type for name, method in METHODS.items()}


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Load a YAML config (a path, or a bundled config's name; None = the defaults), apply
    ``key=value`` overrides, validate against the chosen method's config class."""
    return read_config(path, list(overrides), config_types())


def config_from_dict(tree: dict[str, Any], source: str = "config") -> Config:
    """A config from a dict (a checkpoint's, the bench's), validated like a file."""
    return validate_config(tree, config_types(), source)


def every_config_key() -> list[tuple[str, Any, str, tuple[str, ...]]]:
    """(key, default, description, methods that have it (empty: all)) for --help and the docs."""
    return all_config_keys(config_types())


__all__ = ["CUT", "METHODS", "UNSB", "CycleGAN", "FastCUT", "Method", "StyleTransfer", "TrainingData", "config_from_dict",
           "every_config_key", "generators", "load_config"]
