"""Owner-only report files: reports name people and their access, so nobody else on the host reads them.

Files are created with mode 0o600 by `os.open` (never chmod'ed after the fact, so there is no window where
they are readable by others), written to a fresh temporary name and renamed into place. The rename means a
reader never sees half a report, an existing wider-permission file is replaced rather than reused, and a
symlink planted at the target name is replaced, not followed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from crawler.private import make_private_dirs

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_private_dir(path: Path | str) -> Path:
    """Create `path` (and missing parents) if needed; every directory created is 0o700.

    An existing directory is left as it is: its permissions are the owner's decision.
    """
    return make_private_dirs(path)


def write_private(path: Path | str, data: str | bytes) -> Path:
    """Write `data` to `path` atomically, as a file only its owner can read (0o600)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
