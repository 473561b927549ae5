"""Domain names and the default translation direction, read from a dataset's name.

Used by training (CUT's direction, sample panels) and inference (labels, default direction), so it
sits at the bottom with the config: it imports nothing from the package.
"""

from __future__ import annotations

from pathlib import Path

DIRECTIONS = ("AtoB", "BtoA")



def domain_names(dataset: str | None) -> tuple[str, str]:
    """('monet', 'photo') for 'monet2photo'; ('A', 'B') when the name says nothing."""
    if dataset and "2" in dataset:
        a, b = dataset.split("2", 1)
        if a and b:
            return a, b
    return "A", "B"


def default_direction(dataset: str | None) -> str:
    """Style datasets (monet2photo, ...) are used to turn photos into paintings: BtoA. Else AtoB."""
    return "BtoA" if domain_names(dataset)[1] == "photo" else "AtoB"


def dataset_name(dataset: str | None, root: str | None) -> str | None:
    """The dataset's name: ``data.dataset``, else the name of the ``data.root`` folder."""
    if dataset:
        return dataset
    return Path(root).name if root else None
