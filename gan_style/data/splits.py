"""Which split of a dataset folder shows what a model does: the test split if present, else train.

Layout (data/dataset.py): ``<root>/trainA``, ``<root>/trainB`` and optionally ``testA``,
``testB``. Sample panels, the per-epoch evaluation (eval.every) and ``gan-style eval``'s default
inputs use held-out test images when the dataset has them and fall back to the training images
otherwise. Imports only the standard library, so commands that need just this rule stay light.
"""

from __future__ import annotations

from pathlib import Path


def panel_split(root: str | Path, domains: str = "AB") -> str:
    """"test" when ``root`` holds a test folder of every domain in ``domains`` (testA and testB by
    default; "A" alone asks about testA only), else "train"."""
    root = Path(root)
    return "test" if all((root / f"test{domain}").is_dir() for domain in domains) else "train"
