"""`idgraph diff … | head -1`: when stdout's reader goes away early, end quietly, once, in the entry point.

A write to a closed pipe ends a command with exit 1 (typer swaps `sys.stdout` for a pacifying wrapper;
rich points file descriptor 1 at /dev/null, `Console.on_broken_pipe`), indistinguishable from a failure,
and output still buffered when Python exits would print "Exception ignored … BrokenPipeError". `main`
takes a `StdoutWatch` before the command and asks it afterwards; when the reader left, stdout is
silenced and the exit code is 141 — what a shell reports for a process SIGPIPE ended (`yes | head -1`),
so `set -o pipefail` scripts see the cut as usual. SIGPIPE itself stays ignored: with its default action
a peer closing a socket would kill a crawl.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

EXIT_CLOSED = 141  # 128 + SIGPIPE


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        stat = os.fstat(fd)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class StdoutWatch:
    """What stdout was when the command started, to tell afterwards whether its reader went away."""

    def __init__(self) -> None:
        self.stdout: TextIO = sys.stdout
        try:
            self.fd: int | None = self.stdout.fileno()
        except (AttributeError, OSError, ValueError):  # a test's captured stdout has no descriptor
            self.fd = None
        self.identity = None if self.fd is None else _identity(self.fd)

    def closed(self) -> bool:
        """Whether the reader left before taking every byte (and flush what is still buffered)."""
        if sys.stdout is not self.stdout:
            return True  # typer swapped it after EPIPE
        if self.fd is not None and _identity(self.fd) != self.identity:
            return True  # rich pointed it at /dev/null after EPIPE
        try:
            self.stdout.flush()  # found here, not as noise at interpreter exit
        except BrokenPipeError:
            return True
        except (OSError, ValueError):
            return False
        return False

    def silence(self) -> None:
        """Point the descriptor at /dev/null, so the interpreter's last flush has nowhere to fail."""
        if self.fd is None:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.fd)
        finally:
            os.close(devnull)
