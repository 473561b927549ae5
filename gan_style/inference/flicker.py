"""Temporal flicker of a translated video: how much more the output changes than the input.

    flicker = mean over consecutive pairs of mean |out[t] - out[t-1]|
              / mean over consecutive pairs of mean |in[t] - in[t-1]|

on 8-bit frames (pixel levels 0-255), inputs at the size the generator saw. 1.0: the output
changes from frame to frame as much as the input does; above 1: the translation adds change of
its own (flicker); 0: the output stands still. A still input (no change at all) gives 0 when the
output stands still too, and infinity when it does not. numpy only; used by ``gan-style translate``.
"""

from __future__ import annotations

import math

import numpy as np


def frame_changes(frames: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Mean absolute change of each frame from the one before: (T, H, W, C) uint8 -> (T - 1,) float64.

    With ``previous`` (H, W, C), the last frame of the preceding chunk, returns (T,) values: the
    first frame is compared with it, so a video measured chunk by chunk gives the same figures.
    """
    frames = np.asarray(frames)
    if previous is not None:
        frames = np.concatenate([np.asarray(previous)[None], frames])
    if len(frames) < 2:
        return np.zeros(0)
    diffs = np.abs(np.diff(frames.astype(np.int16), axis=0))  # int16: uint8 differences would wrap
    return diffs.reshape(len(diffs), -1).mean(axis=1, dtype=np.float64)


def flicker_ratio(output_change: float, input_change: float) -> float:
    """Output change over input change (sums or means over the same pairs); see the module docstring."""
    if input_change > 0:
        return output_change / input_change
    return 0.0 if output_change == 0 else math.inf


class FlickerMeter:
    """Accumulates the flicker figure over a video fed in chunks of (input, output) frames."""

    def __init__(self) -> None:
        self.pairs = 0
        self.input_change = 0.0  # sums over consecutive pairs, in pixel levels
        self.output_change = 0.0
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, inputs: np.ndarray, outputs: np.ndarray) -> None:
        """``inputs``, ``outputs``: (T, H, W, 3) uint8, the same T; consecutive chunks of one video."""
        prev_in, prev_out = self._last if self._last is not None else (None, None)
        d_in, d_out = frame_changes(inputs, prev_in), frame_changes(outputs, prev_out)
        self.pairs += len(d_in)
        self.input_change += float(d_in.sum())
        self.output_change += float(d_out.sum())
        self._last = (np.asarray(inputs)[-1], np.asarray(outputs)[-1])

    @property
    def ratio(self) -> float | None:
        """The flicker figure; None before two frames were seen."""
        return flicker_ratio(self.output_change, self.input_change) if self.pairs else None


def flicker(inputs: np.ndarray, outputs: np.ndarray) -> float | None:
    """The flicker figure of a whole clip: ``inputs``, ``outputs`` (T, H, W, 3) uint8."""
    meter = FlickerMeter()
    meter.update(inputs, outputs)
    return meter.ratio
