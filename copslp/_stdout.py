"""Native output kept off stdout: file descriptor 1 pointed elsewhere for a block."""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["native_stdout_to_stderr", "native_stdout_to"]


@contextlib.contextmanager
def native_stdout_to(target: int):
    """Point file descriptor 1 at the open descriptor ``target`` for the duration of the block.

    Compiled code writes on descriptor 1 directly, where no Python setting reaches it:
    cvxpy's own ``highspy.Highs()`` writes HiGHS's banner before any option can switch it
    off, LAPACK's error handler (``xerbla``) writes lines such as "On entry to DLASCL
    parameter number 4 had an illegal value". Inside the block they go to ``target``. Where
    descriptor 1 is closed nothing is redirected.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(target, 1)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def native_stdout_to_stderr():
    """:func:`native_stdout_to` stderr (descriptor 2)."""
    return native_stdout_to(2)
