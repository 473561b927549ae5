"""The comparisons behind ``gan-style eval``: a generator's translations, a folder of fakes, or two
halves of one folder, against target-domain images. Each returns one column of results, a dict
{metric key: value} (keys as in report.ROWS: fid, kid, kid_std, mifid, memorisation, colour_w1,
colour_tv, cycle_l1 ..., n_generated, n_real; with a generator also input and real).

    ev = Evaluation(EvalSettings(metrics=["fid", "colour"], limit=500))  # loads Inception once
    columns = evaluate_weights(ev, ["runs/monet/last.pt"], "BtoA")        # label -> column
    columns = {"fakes": compare_folders(ev, Path("fakes"), Path("datasets/monet2photo/trainA"))}

The CLI (cli/eval.py) parses and checks arguments, calls these and prints the table and JSON.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..data.splits import panel_split
from .registry import FEATURE_METRICS, GROUPS, colour_metrics, feature_metrics

logger = logging.getLogger(__name__)

OPPOSITE = {"AtoB": "BtoA", "BtoA": "AtoB"}


@dataclass(frozen=True)
class EvalSettings:
    """How to measure; the same for every comparison of one evaluation."""

    metrics: list[str] = field(default_factory=lambda: list(GROUPS))  # names of GROUPS
    limit: int | None = None  # at most this many images per folder (first by name)
    batch_size: int = 16
    workers: int = 4  # image-decoding threads
    tile: int | str | None = "auto"  # generator tiling, as for translate
    device: str = "auto"
    precision: str = "fp32"  # the generators'; Inception runs in fp32
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0  # KID subset sampling
    resize: str = "tf-bilinear"  # to Inception's 299 x 299
    inception_weights: str | None = None
    inception_sha256: str | None = None
    cache_dir: str | None = None  # feature cache; None = $GAN_STYLE_CACHE or ~/.cache/gan_style
    no_cache: bool = False
    progress: bool = True


@dataclass(frozen=True)
class Folders:
    """Where images come from; None = the dataset the weights recorded (or ``data_root``)."""

    input: Path | None = None  # images to translate: default <root>/test<source>, else train<source>
    real: Path | None = None  # target-domain images: default <root>/train<target>
    train: Path | None = None  # what MiFID's memorisation is measured against: default ``real``
    data_root: Path | None = None  # instead of the dataset the weights recorded


class Evaluation:
    """What every comparison of one evaluation shares: the settings and the extractor, loaded once."""

    def __init__(self, settings: EvalSettings) -> None:
        self.settings = settings
        self.metrics = list(settings.metrics)
        self.feature_names = [m for m in self.metrics if m in FEATURE_METRICS]
        self.extractor = None
        if self.feature_names:
            from ..devices import resolve_device
            from .inception import cache_dir, load_inception

            s = settings
            given = Path(s.cache_dir) if s.cache_dir else None
            self.cache = None if s.no_cache else given or cache_dir()
            self.device = resolve_device(s.device)
            self.extractor = load_inception(s.inception_weights, self.device, s.resize, s.inception_sha256,
                                            cache=given)

    def record(self) -> dict:
        """The settings the report records (the JSON's "settings")."""
        s = self.settings
        out = {"metrics": self.metrics, "limit": s.limit, "device": s.device, "precision": s.precision}
        if self.extractor is not None:
            out |= self.extractor.key | {"kid_subsets": s.kid_subsets, "kid_subset_size": s.kid_subset_size,
                                         "seed": s.seed}
        return out

    def features(self, folder: Path):
        """Inception features of the (first ``limit``) images of ``folder`` (a FeatureSet), cached."""
        from .features import folder_features

        s = self.settings
        return folder_features(folder, self.extractor, self.cache, s.limit, s.batch_size, s.workers,
                               progress=s.progress)

    def distribution(self, gen, real, train=None) -> dict:
        """The feature metrics chosen (fid, kid, mifid) of features (n, d) against (m, d)."""
        s = self.settings
        return feature_metrics(self.feature_names, gen, real, train, kid_subsets=s.kid_subsets,
                               kid_subset_size=s.kid_subset_size, seed=s.seed)

    def reference(self, real: Path, train: Path | None):
        """The features of ``real`` (a FeatureSet) and of ``train`` ((m, d), None without it)."""
        return self.features(real), self.features(train).features if train else None

    def colours_of(self, folder: Path, names: list[str] | None = None):
        """The colour histogram of the (first ``limit``) images of ``folder``, or of ``names`` in it."""
        from .features import folder_colours

        limit = None if names is not None else self.settings.limit
        return folder_colours(folder, limit, names=names, workers=self.settings.workers)


def compare_folders(ev: Evaluation, fake: Path, real: Path, train: Path | None = None) -> dict:
    """Generated images in ``fake`` against ``real`` (no cycle metrics: they need a generator)."""
    out = {}
    if ev.extractor is not None:
        f = ev.features(fake)
        r, t = ev.reference(real, train)
        out |= ev.distribution(f.features, r.features, t) | {"n_generated": len(f.names), "n_real": len(r.names)}
    if "colour" in ev.metrics:
        out |= colour_metrics(ev.colours_of(fake), ev.colours_of(real))
    return out


def compare_halves(ev: Evaluation, folder: Path) -> dict:
    """The two halves (even / odd file in name order) of ``folder``: the noise floor."""
    from ..io.images import list_images

    out = {}
    if ev.extractor is not None:
        a, b = ev.features(folder).split_halves()
        out |= ev.distribution(a.features, b.features)
        out |= {"n_generated": len(a.names), "n_real": len(b.names)}
    if "colour" in ev.metrics:
        names = [p.name for p in list_images(folder)[: ev.settings.limit]]
        out |= colour_metrics(ev.colours_of(folder, names[0::2]), ev.colours_of(folder, names[1::2]))
    return out


def domain_folder(root: Path, domain: str, prefer_test: bool) -> Path:
    """<root>/test<domain> if ``prefer_test`` and present, else <root>/train<domain>; ValueError if absent."""
    split = panel_split(root, domain) if prefer_test else "train"
    if (root / f"{split}{domain}").is_dir():
        return root / f"{split}{domain}"
    raise ValueError(f"{root}: has no {'test' + domain + ' or ' if prefer_test else ''}train{domain} folder: "
                     "pass the folder explicitly (--input / --real) or --data-root")


def evaluate_weights(ev: Evaluation, specs: list[str], direction: str | None, folders: Folders = Folders(),
                     weights_back: str | None = None, strengths: list[float] | None = None) -> dict[str, dict]:
    """Each generator of ``specs`` (direction "AtoB", "BtoA", "both" or None: the file's default)
    translates its inputs and is compared with the target domain; a strength-conditioned one at each
    of ``strengths`` (None: the middle of its range). Returns label -> column."""
    from ..inference.translate import load_generator

    s = ev.settings
    directions = ["AtoB", "BtoA"] if direction == "both" else [direction]
    columns = {}
    for spec in specs:
        for d in directions:
            gen = load_generator(spec, d, s.device, s.precision)
            gen.info.check_rgb()  # FID, KID and colour metrics are for photos: --paired for scientific data
            label = f"{gen.info.direction or 'G'}: {gen.info.source} -> {gen.info.target}"
            label = f"{Path(spec).name} {label}" if len(specs) > 1 else label
            for strength in strengths or [None]:
                at = gen.with_strength(strength)
                name = label if strength is None else f"{label} @ strength {strength:g}"
                columns[name] = evaluate_generator(ev, at, spec, folders, weights_back)
    return columns


def generator_folders(info, folders: Folders) -> tuple[Path, Path]:
    """(inputs, real) of a generator: the folders given, else its dataset's source and target domains."""
    src, dst = ("A", "B") if info.direction == "AtoB" else ("B", "A")
    given_root = folders.data_root or info.data_root
    root = Path(given_root) if given_root else None
    if not folders.input and (root is None or info.direction is None):
        raise ValueError(f"{info.origin}: no dataset recorded in these weights: pass --input DIR (and --real DIR)")
    inputs = Path(folders.input) if folders.input else domain_folder(root, src, prefer_test=True)
    if not folders.real and (root is None or info.direction is None):
        raise ValueError(f"{info.origin}: pass --real DIR (the target-domain images to compare with)")
    real = Path(folders.real) if folders.real else domain_folder(root, dst, prefer_test=False)
    return inputs, real


def back_generator(ev: Evaluation, gen, spec: str, weights_back: str | None):
    """The opposite generator, for cycle metrics (at ``gen``'s strength when both are strength-conditioned)."""
    back = _opposite(ev, gen, spec, weights_back)
    conditioned = back is not None and back.strength is not None and gen.strength is not None
    return back.with_strength(gen.strength) if conditioned else back


def _opposite(ev: Evaluation, gen, spec: str, weights_back: str | None):
    """The opposite generator: ``weights_back``, else the other one of a CycleGAN checkpoint; None
    (with a note) for a file that holds one generator."""
    from ..inference.translate import load_generator
    from ..inference.weights import WeightsError

    s, info = ev.settings, gen.info
    if weights_back:
        return load_generator(weights_back, OPPOSITE.get(info.direction), s.device, s.precision)
    if info.direction is None or info.run_name is None:
        logger.info("note: %s holds one generator: pass --weights-back for cycle metrics", info.origin)
        return None
    try:  # a CycleGAN checkpoint holds both
        return load_generator(spec, OPPOSITE[info.direction], s.device, s.precision)
    except WeightsError:  # a CUT / FastCUT checkpoint: one generator
        raise ValueError(f"{info.origin}: cycle metrics need two generators (A -> B -> A) and this checkpoint "
                         "holds one (CUT/FastCUT): pass --weights-back SPEC, or leave cycle out of --metrics") from None


def evaluate_generator(ev: Evaluation, gen, spec: str, folders: Folders = Folders(),
                       weights_back: str | None = None) -> dict:
    """One column: ``gen``'s translations of its inputs against the real target-domain images."""
    from ..io.images import list_images
    from .generate import translate_and_measure

    s, info = ev.settings, gen.info
    inputs, real = generator_folders(info, folders)
    back = back_generator(ev, gen, spec, weights_back) if "cycle" in ev.metrics else None
    paths = list_images(inputs)[: s.limit]
    if not paths:
        raise ValueError(f"input folder {inputs} holds no images")
    logger.info("%s: translating %d images of %s, comparing with %s", info.label, len(paths), inputs, real)
    done = translate_and_measure(paths, gen, back, ev.extractor, s.batch_size, s.tile, progress=s.progress)
    out = dict(done.cycle)
    if ev.extractor is not None:
        r, t = ev.reference(real, folders.train)
        out |= ev.distribution(done.features, r.features, t) | {"n_real": len(r.names)}
    if "colour" in ev.metrics:
        out |= colour_metrics(done.colours, ev.colours_of(real))
    return out | {"n_generated": len(done.names), "input": str(inputs), "real": str(real)}
