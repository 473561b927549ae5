"""The published models behind ``official:NAME``: the reference CycleGAN zoo and the CUT zoo.

Both are downloaded once, with a progress bar, into ``$GAN_STYLE_CACHE/pretrained`` (default
``~/.cache/gan_style``). CycleGAN models are one ``.pth`` each. The CUT models come in one
archive, ``pretrained_models.tar``, holding ``<name>_pretrained/latest_net_G.pth`` for each
model: the archive is downloaded once and kept, and only the member asked for is extracted
(atomically, to ``<name>.pth``). Tar members are read as bytes, never extracted by path, so an
archive cannot write outside the cache.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from ..domains import domain_names
from ..io.atomic import write_atomic
from ..io.checkpoint import CheckpointError
from ..io.download import download

OFFICIAL_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
CUT_ARCHIVE_URL = "http://efrosgans.eecs.berkeley.edu/CUT/pretrained_models.tar"
# The reference's published CycleGAN generators (scripts/download_cyclegan_model.sh).
CYCLEGAN_MODELS = (
    "apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
    "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
    "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
    "iphone2dslr_flower",
)  # fmt: skip
# The official CUT / FastCUT generators: name -> (source, target) domains. The cityscapes models
# were trained BtoA on A = photo, B = label, so they turn label maps into photos.
CUT_MODELS = {
    "horse2zebra_cut": ("horse", "zebra"), "horse2zebra_fastcut": ("horse", "zebra"),
    "cat2dog_cut": ("cat", "dog"), "cat2dog_fastcut": ("cat", "dog"),
    "cityscapes_cut": ("label", "photo"), "cityscapes_fastcut": ("label", "photo"),
}  # fmt: skip
OFFICIAL_MODELS = CYCLEGAN_MODELS + tuple(CUT_MODELS)


class ZooError(CheckpointError):
    """A published model that cannot be had; the message names it and the fix."""


def official_domains(name: str) -> tuple[str, str]:
    """Source and target domains of a published model: style_monet = photo -> monet."""
    if name in CUT_MODELS:
        return CUT_MODELS[name]
    if name.startswith("style_"):
        return "photo", name.removeprefix("style_")
    return domain_names(name)


def official_direction(name: str) -> str | None:
    """The direction a published model was trained in, where it is known (CUT: one direction)."""
    return ("BtoA" if name.startswith("cityscapes") else "AtoB") if name in CUT_MODELS else None


def cache_dir() -> Path:
    """``$GAN_STYLE_CACHE`` or ``~/.cache/gan_style``."""
    return Path(os.environ.get("GAN_STYLE_CACHE") or Path.home() / ".cache" / "gan_style")


def official_weights(name: str) -> Path:
    """Path of the published model ``name`` in the cache, downloading it the first time.

    Servers: ``$GAN_STYLE_WEIGHTS_URL`` (the CycleGAN folder) and ``$GAN_STYLE_CUT_WEIGHTS_URL``
    (the CUT archive) when set: a mirror, or a local server in tests.
    """
    if name not in OFFICIAL_MODELS:
        raise ZooError(f"official:{name}: unknown model; published models are: {', '.join(OFFICIAL_MODELS)}")
    path = cache_dir() / "pretrained" / f"{name}.pth"
    if path.is_file():
        return path
    if name in CUT_MODELS:
        return _extract_cut_model(name, path)
    base = (os.environ.get("GAN_STYLE_WEIGHTS_URL") or OFFICIAL_URL).rstrip("/")
    return download(f"{base}/{name}.pth", path, desc=f"official:{name}")


def _extract_cut_model(name: str, dest: Path) -> Path:
    url = os.environ.get("GAN_STYLE_CUT_WEIGHTS_URL") or CUT_ARCHIVE_URL
    archive = dest.parent / "cut_pretrained_models.tar"
    if not archive.is_file():
        download(url, archive, desc="CUT pretrained_models.tar")
    wanted = f"{name}_pretrained/latest_net_G.pth"
    try:
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers() if m.isfile() and m.name.endswith(wanted)), None)
            if member is None:
                raise ZooError(f"official:{name}: {archive} has no {wanted}; delete it to download it again")
            data = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ZooError(f"official:{name}: {archive} is not a readable tar archive ({e}); "
                       f"delete it to download it again from {url}") from None
    return write_atomic(dest, lambda f: f.write(data), binary=True)
