"""Training methods. Each is a training state with one small interface that the one loop calls
(see methods/base.py and docs/architecture.md). The registry is a plain dict: config ``method`` -> class.
"""

from .cut import CUT
from .cyclegan import CycleGAN

METHODS = {"cyclegan": CycleGAN, "cut": CUT, "fastcut": CUT}  # FastCUT = CUT with other defaults (config.py)

__all__ = ["CUT", "METHODS", "CycleGAN"]
