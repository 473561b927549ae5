"""``gan-style serve``: the web app, translating photos in the browser (needs ``gan_style[app]``).

    gan-style serve                                              # http://127.0.0.1:7860, every model found
    gan-style serve --weights runs/monet/last.pt --weights official:style_vangogh --port 7860

Offers the generators of runs/*/last.pt, exports/*.safetensors, the official zoo (downloaded on
first use) and each --weights. Listens on 127.0.0.1 unless --host or --share says otherwise.
Imports nothing from the training code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from ..app.batch import Limits
from ..app.models import Catalog, discover, given_choices, load_compiled
from ..inference.backends import BACKENDS, BackendError, backend_loader, require
from ..inference.memory import default_budget
from ..inference.translate import load_generator
from ..io.checkpoint import CheckpointError
from .translate import bytes_arg

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  gan-style serve                                    # every model under runs/ and exports/, and the zoo\n"
        "  gan-style serve --weights runs/monet/last.pt --only-weights --port 8000\n"
        "  gan-style serve --host 0.0.0.0                     # reachable from the network (read the warning)\n"
        "\nThe page offers only the models listed at start-up; it never opens a path typed in the page."
    )
    a = parser.add_argument
    a(
        "--weights",
        "-w",
        action="append",
        default=[],
        metavar="WEIGHTS",
        help="a generator to offer (repeatable): training checkpoint or run folder, export, reference .pth, "
        "or official:NAME",
    )
    a("--only-weights", action="store_true", help="offer only the --weights (no runs/, exports/ or official zoo)")
    a("--runs", default="runs", type=Path, metavar="DIR", help="training runs to offer and plot (default runs/)")
    a("--exports", default="exports", type=Path, metavar="DIR", help="exported generators to offer (default exports/)")
    a("--no-official", action="store_true", help="do not offer the official models (they download on first use)")
    a("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    a("--port", type=int, default=7860, help="port (default 7860)")
    a("--share", action="store_true", help="also open a public gradio.live link (anyone with it can use the app)")
    a("--max-megapixels", type=float, default=50.0, metavar="MP", help="largest input or output image (default 50)")
    a("--max-upload-mb", type=float, default=100.0, metavar="MB", help="largest uploaded file (default 100)")
    a("--max-files", type=int, default=50, metavar="N", help="most files per request (default 50)")
    a("--concurrency", type=int, default=1, metavar="N", help="translations run at once; others queue (default 1)")
    a("--cache-models", type=int, default=2, metavar="N", help="loaded generators kept in memory (default 2)")
    a("--max-memory", type=bytes_arg, default=default_budget(), metavar="BYTES",
      help="memory one image's translation may take, e.g. 2G (default: 4 GiB or half the RAM, if less); an image "
      "over it is tiled smaller, then its caches spill to disk, or it is refused in one line (as translate's)")
    a(
        "--compile",
        action="store_true",
        help="torch.compile each generator when it is loaded: on a CPU about 2x faster again, after 20-50 s "
        "of compiling per model (needs a C++ compiler)",
    )
    a("--backend", choices=BACKENDS, default="torch",
      help="what runs each model on the CPU: torch (default), onnxruntime, openvino, or auto (timed when the model "
      "loads, the fastest within 2/255 of fp32; see gan-style translate --help)")


def exposure_warnings(host: str, share: bool) -> list[str]:
    """What to tell the user before the server becomes reachable by others."""
    out = []
    if host not in LOOPBACK:
        out.append(
            f"warning: listening on {host}: anyone who can reach this machine on the network can use the app "
            "and its CPU/GPU (there is no login). Use the default 127.0.0.1 to keep it to this machine."
        )
    if share:
        out.append(
            "warning: --share opens a public gradio.live link through Gradio's relay server: anyone with the link "
            "can use the app for up to a week."
        )
    return out


def build_catalog(args: argparse.Namespace) -> Catalog:
    choices = given_choices(args.weights)
    if not args.only_weights:
        choices += discover(args.runs, args.exports, official=not args.no_official)
    if args.backend != "torch":
        loader = backend_loader(args.backend, args.compile)
    else:
        loader = load_compiled if args.compile else load_generator
    return Catalog(choices, max_loaded=args.cache_models, loader=loader, max_memory=args.max_memory)


def run(args: argparse.Namespace) -> int:
    if args.only_weights and not args.weights:
        print("serve: --only-weights needs at least one --weights", file=sys.stderr)
        return 2
    try:
        if args.backend in ("onnxruntime", "openvino"):
            require(args.backend)  # before the server starts: one line, not an error per request
        catalog = build_catalog(args)
    except (CheckpointError, OSError, BackendError) as e:
        print(f"serve: {e}", file=sys.stderr)
        return 2
    if not catalog.labels:
        print("serve: no models to offer: pass --weights, or train (runs/) or export (exports/) one", file=sys.stderr)
        return 2
    for line in exposure_warnings(args.host, args.share):
        print(line, file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="gan_style_serve_"))
    # SIGTERM (docker, Spaces, kill) stops the server like Ctrl-C does, so the cleanup below runs.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return serve(args, catalog, work)
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(work, ignore_errors=True)  # uploads, results and Gradio's cache


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace, catalog: Catalog, work: Path) -> int:
    # Before Gradio is imported: it reads these at import time.
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from PIL import Image

    from ..app.examples import write_examples

    try:
        from ..app.ui import AppConfig, build_app, launch_app
    except ImportError as e:
        print(f"serve: the web app needs Gradio ({e}): pip install 'gan_style[app]' (make setup does)", file=sys.stderr)
        return 2
    limits = Limits(args.max_megapixels, args.max_upload_mb, args.max_files)
    # Our own pixel limit is checked first; let PIL decode anything up to it.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, int(limits.max_megapixels * 1e6))
    config = AppConfig(
        work_dir=work / "results",
        upload_dir=work / "gradio",
        runs=args.runs,
        limits=limits,
        examples=write_examples(work / "examples"),
        concurrency=max(1, args.concurrency),
    )
    print(f"serve: {len(catalog.labels)} model(s): " + "; ".join(catalog.labels[:6])
          + (" ..." if len(catalog.labels) > 6 else ""), file=sys.stderr)
    launch_app(build_app(config, catalog), config, args.host, args.port, args.share)
    return 0
