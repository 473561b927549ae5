"""The Gradio page of ``gan-style serve``: a Translate tab, a "From one painting" tab and a Training tab.

Everything the page can ask for is a choice the server made: model labels (``Catalog``), run
names (``training.list_runs``), devices, precisions and tile sizes from fixed lists. Uploaded
files are read only if they lie in Gradio's upload folder. Gradio must be imported after
``GRADIO_TEMP_DIR`` is set (``gan_style.cli.serve`` does it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import torch

from ..devices import INFERENCE_PRECISIONS
from ..io.checkpoint import CheckpointError
from ..io.download import DownloadError
from .batch import Batch, InputRefused, Limits, summary, translate_files
from .models import Catalog, UnknownModel
from .stylize import CPU_MAX_SIDE, stylize_stream
from .training import latest_panels, list_runs, loss_curves, read_metrics, run_dir, run_status

TILES = {"auto": "auto", "off": 0, "512 px": 512, "1024 px": 1024}
REFRESH_S = 10.0  # the training tab re-reads the selected run this often
THEME = gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])  # no web fonts
INTRO = (
    "# gan_style: photos to paintings\n"
    "Drop one photo or many, choose a model and press **Translate**. Everything runs on this server; "
    "nothing is uploaded elsewhere."
)


@dataclass
class AppConfig:
    work_dir: Path  # where each request's results go (removed when the server stops)
    upload_dir: Path  # Gradio's upload folder: the only place uploaded files are read from
    runs: Path = Path("runs")
    limits: Limits = field(default_factory=Limits)
    examples: list[Path] = field(default_factory=list)
    concurrency: int = 1


def devices() -> list[str]:
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def precisions() -> list[str]:
    return [p for p in INFERENCE_PRECISIONS if p != "fp16" or torch.cuda.is_available()]


def uploaded(files: list[str] | None, upload_dir: Path) -> list[tuple[Path, str]]:
    """(path, the user's file name) of each uploaded file; anything outside the upload folder is refused."""
    out = []
    root = upload_dir.resolve()
    for f in files or []:
        path = Path(f).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise gr.Error(f"{Path(f).name}: not a file uploaded to this page")
        out.append((path, path.name))
    return out


def translate_handler(config: AppConfig, catalog: Catalog):
    def translate(files, label, steps, strength, size, tile, device, precision,
                  progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        inputs = uploaded(files, config.upload_dir)
        if not inputs:
            raise gr.Error("Add one or more images first (drag them onto the upload box).")
        try:
            progress(0, desc=f"loading {label} (the first time: downloading or compiling may take a minute)")
            choice = catalog.choice(label)
            chosen_steps = min(max(1, int(steps or choice.steps)), choice.steps) if choice.steps > 1 else None
            chosen_strength = float(strength) if choice.strength_range is not None and strength is not None else None
            gen = catalog.get(label, device, precision, chosen_steps, chosen_strength)
            batch = translate_files(
                gen,
                inputs,
                config.work_dir / uuid.uuid4().hex,
                size=max(0, int(size or 0)) or None,
                tile=TILES[tile],
                limits=config.limits,
                progress=lambda f, what: progress(f, desc=what),
            )
        except (UnknownModel, CheckpointError, DownloadError, InputRefused, ValueError, KeyError) as e:
            raise gr.Error(str(e)) from None
        for r in batch.failed:
            gr.Warning(r.error, duration=8)  # also listed under the status line, which stays
        return page_outputs(batch, summary(batch, label, gen))

    return translate


PREVIEW_SIZE = 384  # the instant preview's short side, in px


def preview_handler(config: AppConfig, catalog: Catalog):
    """Moving the Strength slider: the first photo translated again at that strength, small, at once."""
    def preview(files, label, steps, strength, device, precision):
        inputs = uploaded(files, config.upload_dir)[:1]
        choice = catalog.choice(label)
        if not inputs or choice.strength_range is None:
            return gr.update(), gr.update(), gr.update()
        try:
            steps = min(max(1, int(steps or choice.steps)), choice.steps) if choice.steps > 1 else None
            gen = catalog.get(label, device, precision, steps, float(strength))
            batch = translate_files(gen, inputs, config.work_dir / uuid.uuid4().hex, size=PREVIEW_SIZE,
                                    limits=config.limits)
        except (UnknownModel, CheckpointError, DownloadError, InputRefused, ValueError, KeyError) as e:
            raise gr.Error(str(e)) from None
        if not batch.done:
            return gr.update(), gr.update(), gr.update()
        first = batch.done[0]
        note = f"Preview at strength {float(strength):g} ({PREVIEW_SIZE} px): press Translate for the full size."
        return note, str(first.before), str(first.after)

    return preview


def page_outputs(batch: Batch, status: str) -> tuple:
    """status, before, after, gallery, downloads, the (before, after) pairs for the gallery."""
    done = batch.done
    pairs = [(str(r.before), str(r.after)) for r in done]
    gallery = [(str(r.after), r.name) for r in done]
    downloads = ([str(batch.zip)] if batch.zip else []) + [str(r.png) for r in done]
    first = pairs[0] if pairs else (None, None)
    return status, first[0], first[1], gallery, downloads or None, pairs


def show_pair(pairs: list, evt: gr.SelectData):
    before, after = pairs[evt.index] if pairs and 0 <= evt.index < len(pairs) else (None, None)
    return before, after


def translate_tab(config: AppConfig, catalog: Catalog) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(label="Photos (drop one or many)", file_count="multiple", elem_id="inputs")
            if config.examples:
                gr.Examples([[[str(p)]] for p in config.examples], inputs=[files], label="Examples")
            model = gr.Dropdown(catalog.labels, value=catalog.labels[0], label="Model", elem_id="model")
            steps = gr.Slider(1, 2, step=1, label=STEPS_LABEL, elem_id="steps", **steps_slider(catalog, catalog.labels[0]))
            strength = gr.Slider(0, 1, step=0.05, label=STRENGTH_LABEL, elem_id="strength",
                                 **strength_slider(catalog, catalog.labels[0]))
            with gr.Accordion("Options", open=False):
                size = gr.Number(0, precision=0, minimum=0, label="Output short side in pixels (0 = keep the size)")
                tile = gr.Dropdown(list(TILES), value="auto", label="Tiles (auto: only images over 4 megapixels)")
                device = gr.Dropdown(devices(), value="auto", label="Device")
                precision = gr.Dropdown(precisions(), value="auto", label="Precision")
            go = gr.Button("Translate", variant="primary", elem_id="translate")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="status")
            with gr.Row():
                before = gr.Image(label="Before", type="filepath", interactive=False, elem_id="before")
                after = gr.Image(label="After", type="filepath", interactive=False, format="png", elem_id="after")
            gallery = gr.Gallery(
                label="All results (click one to compare)", columns=6, height=200, preview=False,
                fit_columns=False, elem_id="gallery",
            )
            downloads = gr.File(label="Download (PNG; a zip for a batch)", file_count="multiple", elem_id="downloads")
    pairs = gr.State([])
    go.click(
        translate_handler(config, catalog),
        inputs=[files, model, steps, strength, size, tile, device, precision],
        outputs=[status, before, after, gallery, downloads, pairs],
        concurrency_limit=config.concurrency,
        concurrency_id="translate",
    )
    gallery.select(show_pair, inputs=[pairs], outputs=[before, after])
    model.change(lambda label: (gr.update(**steps_slider(catalog, label)), gr.update(**strength_slider(catalog, label))),
                 inputs=[model], outputs=[steps, strength])
    strength.release(preview_handler(config, catalog), inputs=[files, model, steps, strength, device, precision],
                     outputs=[status, before, after], concurrency_limit=config.concurrency,
                     concurrency_id="translate")


STEPS_LABEL = "Steps (a multi-step model: fewer is faster and translates less)"
STRENGTH_LABEL = "Strength (0 keeps the photo most, 1 translates most)"


def strength_slider(catalog: Catalog, label: str) -> dict:
    """The Strength slider: shown for strength-conditioned models only, at the middle of the range
    they were trained on (the whole of [0, 1] can be chosen; outside the range they extrapolate)."""
    span = catalog.choice(label).strength_range
    return {"visible": span is not None, "value": sum(span) / 2 if span is not None else 0.5}


def steps_slider(catalog: Catalog, label: str) -> dict:
    """The Steps slider for a model: shown, up to its steps and at the most, for multi-step models only."""
    most = catalog.choice(label).steps
    return {"visible": most > 1, "maximum": max(2, most), "value": most}


def stylize_handler(config: AppConfig):
    def paint(files, painting, strength, keep_colour, device, progress=gr.Progress()):  # noqa: B008
        photos, style = uploaded(files, config.upload_dir), uploaded([painting] if painting else [], config.upload_dir)
        if not photos or not style:
            raise gr.Error("Add one or more photos and one painting first.")
        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
        out = config.work_dir / uuid.uuid4().hex
        try:
            for update in stylize_stream(photos[: config.limits.max_files], style[0], float(strength), bool(keep_colour),
                                         out, dev, config.limits):
                yield update.status, update.preview and str(update.preview), [str(p) for p in update.results] or None
        except (InputRefused, ValueError, OSError) as e:
            raise gr.Error(str(e).splitlines()[0]) from None

    return paint


def stylize_tab(config: AppConfig) -> None:
    gr.Markdown(f"Drop photos and one painting, choose how strongly to paint, press **Stylize**, and watch the "
                f"painting emerge (Gatys et al.: no training, no model). On a CPU the long side is limited to "
                f"{CPU_MAX_SIDE} px, about 30 s a photo.")
    with gr.Row():
        with gr.Column(scale=1):
            photos = gr.File(label="Photos", file_count="multiple", elem_id="style-photos")
            painting = gr.File(label="Painting", file_count="single", elem_id="style-painting")
            strength = gr.Slider(0, 1, value=0.5, step=0.05, label="Strength (0 = the photo, 1 = style only)",
                                 elem_id="style-strength")
            keep_colour = gr.Checkbox(False, label="Keep the photo's colours", elem_id="style-colour")
            device = gr.Dropdown(devices(), value="auto", label="Device")
            go = gr.Button("Stylize", variant="primary", elem_id="stylize")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="style-status")
            result = gr.Image(label="Painting of your photo", type="filepath", interactive=False, elem_id="style-result")
            downloads = gr.File(label="Download (PNG)", file_count="multiple", elem_id="style-downloads")
    go.click(stylize_handler(config), inputs=[photos, painting, strength, keep_colour, device],
             outputs=[status, result, downloads], concurrency_limit=config.concurrency, concurrency_id="translate")


def training_handler(config: AppConfig):
    import pandas as pd  # a Gradio dependency

    def refresh(name: str | None):
        runs = list_runs(config.runs)
        if name not in runs:
            return gr.update(choices=runs, value=None), None, [], "Choose a run."
        folder = run_dir(config.runs, name)
        rows = read_metrics(folder / "metrics.jsonl")
        tag, panels = latest_panels(folder)
        curves = pd.DataFrame(loss_curves(rows), columns=["step", "loss", "value"])
        return gr.update(choices=runs), curves, panels, run_status(rows, tag)

    return refresh


def training_tab(config: AppConfig, tab: gr.Tab) -> None:
    runs = list_runs(config.runs)
    gr.Markdown(f"Runs under `{config.runs}`: losses from `metrics.jsonl` and the newest sample panels "
                f"(real | translated | reconstructed), re-read every {REFRESH_S:g} s.")
    with gr.Row():
        run = gr.Dropdown(runs, value=runs[0] if runs else None, label="Run", elem_id="run")
        refresh_button = gr.Button("Refresh", scale=0)
    info = gr.Markdown()
    plot = gr.LinePlot(x="step", y="value", color="loss", title="Losses", height=320, elem_id="losses")
    panels = gr.Gallery(label="Latest samples", columns=1, elem_id="panels")
    refresh = training_handler(config)
    outputs = [run, plot, panels, info]
    for event in (tab.select, run.change, refresh_button.click, gr.Timer(REFRESH_S).tick):
        event(refresh, inputs=[run], outputs=outputs, show_progress="hidden", concurrency_id="training")


def build_app(config: AppConfig, catalog: Catalog) -> gr.Blocks:
    """The page. Launch it with ``launch_app``."""
    if not catalog.labels:
        raise ValueError("no models to offer: pass --weights, or train (runs/) or export (exports/) one")
    with gr.Blocks(title="gan_style", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown(INTRO)
        with gr.Tab("Translate"):
            translate_tab(config, catalog)
        with gr.Tab("From one painting"):
            stylize_tab(config)
        with gr.Tab("Training") as tab:
            training_tab(config, tab)
    return app


def launch_app(app: gr.Blocks, config: AppConfig, host: str, port: int, share: bool, block: bool = True):
    """Start the server: queued (``config.concurrency`` translations at a time), uploads limited."""
    app.queue(default_concurrency_limit=config.concurrency, max_size=64)
    return app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=f"{config.limits.max_upload_mb:g}mb",
        allowed_paths=[],
        theme=THEME,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        show_error=False,
        quiet=False,
        prevent_thread_lock=not block,
        footer_links=[],
    )

