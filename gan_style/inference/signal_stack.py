"""Keep the calling thread's alternate signal stack across a call into a native library.

OpenVINO's CPU plugin (2026.4) installs its own alternate signal stack on the thread that runs an
inference, and frees that memory later without restoring the previous one. Python installs its
signal handlers with SA_ONSTACK, so the next handled signal on that thread (e.g. the SIGCHLD handler
of a DataLoader with workers) is delivered onto freed memory: the kernel kills the process with
SIGSEGV (SI_KERNEL). Measured in the test suite: pytest's faulthandler stack replaced by the
plugin's, unmapped after the bench's OpenVINO rows, then a crash at the next child's exit.

    with kept_signal_stack():
        request.infer(feed)
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator


class _Stack(ctypes.Structure):  # stack_t of <signal.h> on Linux
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # a libc that cannot be opened: nothing to keep
        return None


_LIBC = _libc()


def current() -> _Stack | None:
    """The calling thread's alternate signal stack (None where it cannot be read)."""
    if _LIBC is None:
        return None
    stack = _Stack()
    return stack if _LIBC.sigaltstack(None, ctypes.byref(stack)) == 0 else None


@contextlib.contextmanager
def kept_signal_stack() -> Iterator[None]:
    """Run the block, then put back the thread's alternate signal stack if the block changed it."""
    before = current()
    try:
        yield
    finally:
        after = current()
        if before is not None and after is not None and (after.ss_sp, after.ss_size) != (before.ss_sp, before.ss_size):
            if before.ss_flags & 2:  # SS_DISABLE: there was none
                before.ss_sp, before.ss_size = None, 0
            _LIBC.sigaltstack(ctypes.byref(before), None)
