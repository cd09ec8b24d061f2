"""What every command writes to the terminal besides its own output."""

from __future__ import annotations

import contextlib
import os
import sys


def err(message: str) -> None:
    """Print `error: message` on standard error."""
    print(f"error: {message}", file=sys.stderr)


def silence_stdout() -> None:
    """Point standard output at /dev/null so the interpreter's final flush cannot fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
