"""Where library warnings go when gan_style runs as a command.

Library modules warn through ``logging`` (``logger = logging.getLogger(__name__)``) and never
print; an application embedding gan_style decides what to do with them. The commands
(``gan-style ...``, ``python -m gan_style.bench``) call ``show_warnings`` so users see each warning as
a single ``warning: ...`` line on stderr, above any progress bar, and information (INFO) as its
plain line. Imports only the standard library.
"""

from __future__ import annotations

import logging
import sys


class WarningLines(logging.Handler):
    """Writes each record as one line to the current ``sys.stderr``: ``warning: MESSAGE`` for
    warnings and errors, the message alone for information (e.g. where a W&B run is)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("warning: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) if record.levelno >= logging.WARNING else record.getMessage()).replace("\n", " ")
            from tqdm import tqdm  # write above a progress bar instead of through it

            tqdm.write(line, file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's contract: report through handleError, never raise
            self.handleError(record)


def show_warnings() -> None:
    """Show gan_style's warnings on stderr (once, however often called). Records still propagate
    to the root logger, so an application's own logging configuration sees them too."""
    log = logging.getLogger("gan_style")
    if not any(isinstance(h, WarningLines) for h in log.handlers):
        log.addHandler(WarningLines())
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)


def show_details() -> None:
    """Also show gan_style's debug records (``--verbose``), as plain lines."""
    show_warnings()
    log = logging.getLogger("gan_style")
    log.setLevel(logging.DEBUG)
    for handler in log.handlers:
        if isinstance(handler, WarningLines):
            handler.setLevel(logging.DEBUG)
