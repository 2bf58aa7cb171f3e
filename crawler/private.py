"""Owner-only files and directories: the snapshot, plans, audit logs and reports name people.

Directories idgraph creates are 0o700 (each missing component, not only the last); files it keeps are
0o600. An existing file that is wider is narrowed, or refused with a clear message when it cannot be.

New files are written by `write_private`: created 0o600 by `os.open` (never chmod'ed after the fact, so
there is no window where they are readable by others), written to a fresh temporary name and renamed into
place. The rename means a reader never sees half a file, an existing wider-permission file is replaced
rather than reused, and a symlink planted at the target name is replaced, not followed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


class PermissionsError(OSError):
    """A file holding people's data is readable by others and cannot be made owner-only."""


def make_private_dirs(path: Path | str) -> Path:
    """Create `path` and every missing parent as 0o700; existing directories are left as they are."""
    path = Path(path)
    missing = []
    current = path
    while not current.is_dir() and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:  # created meanwhile by someone else: use it
            continue
        os.chmod(directory, DIR_MODE)  # a umask can only narrow it; make it exact
    return path


def restrict_file(path: Path | str) -> None:
    """Narrow an existing file to 0o600 when others can read or write it; refuse when that fails."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    try:
        os.chmod(path, FILE_MODE)
    except OSError as exc:
        raise PermissionsError(
            f"{path} is readable by others (mode {mode:04o}) and cannot be made owner-only (0600): "
            f"{exc.strerror}; chmod 600 it, or use a file you own"
        ) from None


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
