"""Run monitoring: scalars to ``metrics.jsonl``, image panels to ``samples/``, and the same to W&B.

Only rank 0 creates a ``Monitor``; other ranks get ``NullMonitor``. Scalars use namespaced
keys (``loss/G_A``, ``D/A_real``, ``lr/G``, ``time/img_per_s``, ``mem/peak_gb``).

The local files never depend on W&B: they are written first, whatever W&B does. W&B is
imported only when ``logging.wandb`` is not ``disabled``, and any W&B failure (not installed,
bad settings, init or network error, a raising ``log``) is reported once, in one line, after
which the run goes on with the local files only. See docs/monitoring.md.
"""

from __future__ import annotations

import json
import logging
import math
import netrc
import os
import re
import secrets
import string
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

import numpy as np
import torch
from torchvision.utils import make_grid

from ..io.atomic import write_atomic
from ..io.images import write_image
from ..io.tensors import as_display, unit_to_uint8_hwc

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..config import LoggingConfig

STEP_KEY = "step"  # the training step, logged with every row: the x-axis of every chart


class NullMonitor:
    """What non-zero ranks use: every call does nothing."""

    run_id: str | None = None

    def start(self, info: dict[str, Any]) -> None: ...
    def log(self, step: int, scalars: dict[str, float]) -> None: ...
    def log_panels(self, step: int, tag: str, panels: dict[str, torch.Tensor],
                   captions: dict[str, str] | None = None, scalars: dict[str, float] | None = None) -> None: ...
    def log_artifacts(self, files: dict[str, Path]) -> None: ...
    def alert(self, title: str, text: str) -> None: ...
    def finish(self, exit_code: int | None = None) -> None: ...

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps so that a resumed run continues the same W&B run."""
        return {}


class Monitor(NullMonitor):
    """Rank 0's monitor.

    ``logging``: the ``logging`` config section (None = W&B off). ``state``: what ``state()``
    returned in the checkpoint being resumed (its run id is kept when the run name matches).
    ``step``: the step training starts from; rows of ``metrics.jsonl`` after it are dropped
    (logged after the last checkpoint of an interrupted run, they will be redone).
    """

    def __init__(self, run_dir: Path, logging: LoggingConfig | None = None, name: str | None = None,
                 state: dict[str, Any] | None = None, step: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.name = name or self.run_dir.name
        self.samples_dir = self.run_dir / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        state = state or {}
        same_run = state.get("run_id") and state.get("run_name", self.name) == self.name
        self.run_id: str = state["run_id"] if same_run else new_run_id()
        self.wandb_mode = "disabled"
        self._logging = logging
        self._step = step
        self._wandb = None  # the wandb module, once imported
        self._run = None  # the live W&B run; None when off or after a failure
        self._failed_run = None  # a run that raised: finished (best effort) at the end
        self._reported = False
        self._defined: set[str] = set()
        metrics = self.run_dir / "metrics.jsonl"
        drop_rows_after(metrics, step)  # step 0: a fresh run replaces the rows of one that never saved
        self._metrics = open(metrics, "a", buffering=1)  # line-buffered: survives a crash

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_name": self.name}

    # ---- start: run_info.json, then W&B ----
    def start(self, info: dict[str, Any]) -> None:
        setting = self._logging.wandb if self._logging is not None else "disabled"
        mode, reason = resolve_wandb_mode(setting, os.environ)
        if mode != "disabled":
            self._start_wandb(info, mode, reason)
        info = info | {"monitor": {"run_id": self.run_id, "wandb": self.wandb_mode,
                                   "wandb_dir": self._sync_dir() and str(self._sync_dir())}}
        write_text_atomic(self.run_dir / "run_info.json", json.dumps(info, indent=2, default=str))

    def _start_wandb(self, info: dict[str, Any], mode: str, reason: str) -> None:
        try:
            import wandb
        except Exception as e:  # not installed, or broken: the local files still get everything
            self._report("import", e, "install it with `pip install wandb`, or set logging.wandb=disabled")
            return
        cfg = self._logging
        kwargs: dict[str, Any] = {
            "id": self.run_id,
            "resume": "allow",  # continue the run when it exists (resume), create it otherwise
            "mode": mode,
            "job_type": "train",
            # The resolved config plus the facts of this run, flat at the top for filtering runs.
            "config": info.get("config", {}) | {k: v for k, v in info.items() if k != "config"},
            "reinit": "create_new",  # never finish or reuse a run the calling code may hold
        }
        if not (os.environ.get("WANDB_QUIET") or os.environ.get("WANDB_SILENT")):
            kwargs["settings"] = {"quiet": True}  # our lines say where the run is; no summary table under tqdm
        # W&B's own environment variables win over our defaults: WANDB_PROJECT, WANDB_DIR, ...
        for key, env_var, value in (("project", "WANDB_PROJECT", cfg.wandb_project),
                                    ("entity", "WANDB_ENTITY", cfg.wandb_entity),
                                    ("name", "WANDB_NAME", self.name),
                                    ("dir", "WANDB_DIR", str(self.run_dir))):
            if value is not None and not os.environ.get(env_var):
                kwargs[key] = value
        try:
            run = wandb.init(**kwargs)
        except Exception as e:
            self._report("init", e, "check the WANDB_* variables, `wandb login`, or set logging.wandb=offline")
            return
        self._wandb, self._run, self.wandb_mode = wandb, run, mode
        self._guard("init", run.define_metric, STEP_KEY)
        if self._run is None:
            return
        if mode == "online":
            logger.info("W&B: online run %s (%s)", getattr(run, "url", None) or run.id, reason)
        else:
            logger.info("W&B: offline run (%s) written to %s", reason, short(self._sync_dir()))

    # ---- during training ----
    def log(self, step: int, scalars: dict[str, float]) -> None:
        self._step = step
        clean = {k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()}
        self._metrics.write(json.dumps({STEP_KEY: step, **clean}) + "\n")
        if self._run is not None:
            self._guard("log", self._wandb_log, step, dict(scalars))

    def log_panels(self, step: int, tag: str, panels: dict[str, torch.Tensor],
                   captions: dict[str, str] | None = None, scalars: dict[str, float] | None = None) -> None:
        """``panels``: name -> (n, k, 3, H, W) in [-1, 1]: n rows of k columns (e.g. real | fake | rec);
        ``captions``: name -> what the columns show (the method's ``panel_columns``); ``scalars``:
        measured on the panels, logged with them on W&B (e.g. panels/A_correlation)."""
        self._step = step
        images = {name: unit_to_uint8_hwc(panel_grid(columns)) for name, columns in panels.items()}  # (H, W, 3)
        for name, image in images.items():
            write_image(self.samples_dir / f"{tag}_{name}.png", image, "PNG")
        if self._run is not None:
            self._guard("log", self._wandb_panels, step, tag, images, captions or {}, scalars or {})

    def alert(self, title: str, text: str) -> None:
        """A warning that W&B shows on the run's page and mails (the log has its own line)."""
        if self._run is not None:
            self._guard("alert", self._wandb_alert, title, text)

    def log_artifacts(self, files: dict[str, Path]) -> None:
        """Upload the final files (kind -> path, e.g. "checkpoint": last.pt) as W&B model
        artifacts when ``logging.log_artifacts`` is on; a checkpoint's two generators are also
        exported (safetensors, in ``export/``) and uploaded as ``<name>-generator``."""
        if self._run is None or not (self._logging and self._logging.log_artifacts):
            return
        uploads = {kind: [Path(path)] for kind, path in files.items() if Path(path).is_file()}
        if "checkpoint" in uploads:
            uploads["generator"] = self._export_generators(uploads["checkpoint"][0])
        for kind, paths in uploads.items():
            if paths:
                self._guard(f"artifact upload of {kind}", self._wandb_artifact, kind, paths)

    def _export_generators(self, checkpoint: Path) -> list[Path]:
        """The generators the checkpoint records (one per direction) as verified safetensors files;
        [] (and one line) if the export fails."""
        try:
            from ..inference.export import export_generator
            from ..inference.weights import generator_directions

            return [export_generator(checkpoint, "safetensors", self.run_dir / "export" / f"{self.name}_{d}.safetensors",
                                     direction=d).path for d in generator_directions(checkpoint)]
        except Exception as e:
            logger.warning(f"could not export the generators for W&B ({type(e).__name__}: {first_line(e)}); "
                "uploading the checkpoint only")
            return []

    def finish(self, exit_code: int | None = None) -> None:
        """Close the files and the W&B run. ``exit_code`` None: 0, or taken from the exception
        being raised when called from a ``finally`` (so W&B marks stopped runs as failed)."""
        if not self._metrics.closed:
            self._metrics.close()
        if exit_code is None:
            exc = sys.exc_info()[1]  # TrainingStopped carries its exit code; Ctrl-C is 130
            default = 130 if isinstance(exc, KeyboardInterrupt) else 1
            exit_code = 0 if exc is None else getattr(exc, "exit_code", default)
        run, self._run = self._run or self._failed_run, None
        self._failed_run = None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as e:
            self._report("finish", e, "the local files are complete")
        if self.wandb_mode == "offline":
            logger.info("W&B: offline run saved; upload it with: wandb sync %s", self._sync_pattern(run))

    # ---- W&B calls (each wrapped by _guard) ----
    def _wandb_log(self, step: int, row: dict[str, Any]) -> None:
        self._define(row)
        self._run.log(row | {STEP_KEY: step})

    def _wandb_panels(self, step: int, tag: str, images: dict[str, np.ndarray], captions: dict[str, str],
                      scalars: dict[str, float]) -> None:
        row = {f"samples/{name}": self._wandb.Image(image, caption=f"{tag}: {captions.get(name, 'samples')}")
               for name, image in images.items()} | scalars
        self._define(row)
        self._run.log(row | {STEP_KEY: step})

    def _wandb_alert(self, title: str, text: str) -> None:
        self._run.alert(title=title, text=text)

    def _wandb_artifact(self, kind: str, paths: list[Path]) -> None:
        name = re.sub(r"[^\w.-]", "-", f"{self.name}-{kind}")  # W&B allows letters, digits, - _ .
        artifact = self._wandb.Artifact(name, type="model", metadata={"step": self._step})
        for path in paths:
            artifact.add_file(str(path))
        self._run.log_artifact(artifact, aliases=["latest", f"step_{self._step}"])

    def _define(self, row: dict[str, Any]) -> None:
        """Plot every key against the training step. W&B globs take a prefix only (``loss/*``),
        so each new prefix (or bare key) is declared the first time it is seen."""
        for key in row:
            pattern = key.split("/")[0] + "/*" if "/" in key else key
            if pattern not in self._defined:
                self._run.define_metric(pattern, step_metric=STEP_KEY)
                self._defined.add(pattern)

    # ---- failure handling ----
    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        run = self._run
        try:
            fn(*args)
        except Exception as e:
            self._run, self._failed_run = None, run  # stop using it; finish() still tries to close it
            self._report(what, e, "training goes on")

    def _report(self, what: str, exc: Exception, hint: str) -> None:
        """One line, once per run: later failures add nothing a user can act on."""
        if self._reported:
            return
        self._reported = True
        logger.warning("W&B %s failed (%s: %s); %s; metrics.jsonl and samples/ in %s keep everything",
                       what, type(exc).__name__, first_line(exc), hint, short(self.run_dir))

    def _sync_dir(self) -> Path | None:
        """The folder `wandb sync` uploads (the offline run's folder), or None."""
        sync_dir = getattr(getattr(self._run, "settings", None), "sync_dir", None)
        return Path(sync_dir) if sync_dir else None

    def _sync_pattern(self, run: Any) -> str:
        """A resumed offline run is one folder per session, all with the run id: sync them all."""
        sync_dir = getattr(getattr(run, "settings", None), "sync_dir", None)
        if not sync_dir:
            return "<the offline-run-* folders in wandb/>"
        # W&B appends -1, -2 ... when a resumed part starts within the same second as the last one.
        pattern = f"offline-run-*-{self.run_id}*"
        parts = list(Path(sync_dir).parent.glob(pattern))
        return short(Path(sync_dir).parent) + f"/{pattern}" if len(parts) > 1 else short(sync_dir)


# ---- helpers ----
def resolve_wandb_mode(setting: str, environ: dict[str, str] | os._Environ) -> tuple[str, str]:
    """``logging.wandb`` + the environment -> (online | offline | disabled, why).

    ``disabled`` in the config always wins (W&B is then never imported). Otherwise W&B's
    own ``WANDB_MODE`` (or ``WANDB_DISABLED=true``) wins over the config, and ``auto`` means
    online when an API key is found (env or ``wandb login``'s netrc entry), else offline.
    """
    if setting == "disabled":
        return "disabled", "logging.wandb=disabled"
    env_mode = environ.get("WANDB_MODE", "").strip().lower()
    env_mode = {"dryrun": "offline", "run": "online", "shared": "online"}.get(env_mode, env_mode)
    if env_mode in ("online", "offline", "disabled"):
        return env_mode, f"WANDB_MODE={environ['WANDB_MODE']}"
    if environ.get("WANDB_DISABLED", "").strip().lower() in ("1", "true", "yes"):
        return "disabled", "WANDB_DISABLED"
    if setting in ("online", "offline"):
        return setting, f"logging.wandb={setting}"
    if has_wandb_credentials(environ):
        return "online", "W&B API key found"
    return "offline", "no W&B API key found; `wandb login` to stream runs online"


def has_wandb_credentials(environ: dict[str, str] | os._Environ) -> bool:
    """True when W&B would find credentials: WANDB_API_KEY, an identity token file, or an
    entry for the W&B host in the netrc file that ``wandb login`` writes."""
    if environ.get("WANDB_API_KEY") or environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = environ.get("NETRC") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".netrc")
    try:
        return bool(host) and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def new_run_id() -> str:
    """8 lowercase letters/digits, as W&B makes them."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def panel_grid(columns: torch.Tensor) -> torch.Tensor:
    """(n, k, C, H, W) in [-1, 1] -> one (3, n*H, k*W) image in [0, 1]: n rows of k columns.
    Scientific data arrives windowed to [-1, 1] by its domain's intensity: 8 bits for display only."""
    n, k = columns.shape[:2]
    return make_grid(as_display(columns.flatten(0, 1).float()), nrow=k, padding=2, normalize=True, value_range=(-1, 1))


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text))


def drop_rows_after(path: Path, step: int) -> None:
    """Keep the rows of a metrics.jsonl with step <= ``step``, so a resumed run's file reads as
    one history with increasing steps."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = [line for line in lines if _row_step(line) <= step]
    if len(keep) != len(lines):
        write_text_atomic(path, "".join(keep))


def _row_step(line: str) -> float:
    try:
        return float(json.loads(line)[STEP_KEY])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a torn last line from a crash: drop it


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def short(path: Path | None) -> str:
    """The path relative to the working directory when inside it (shorter commands to copy)."""
    if path is None:
        return "?"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


