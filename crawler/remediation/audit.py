"""The audit log: one JSON line per remediation action, hash-chained so that an edited entry shows.

Each line is canonical JSON (sorted keys, no spaces) and carries `prev_hash`, the sha256 of the previous
line's bytes (64 zeros for the first), and `hash`, the sha256 of its own canonical content without `hash`.
Editing a field breaks that entry's `hash`; deleting, inserting or reordering lines breaks the next
`prev_hash` and the `seq` numbering. `verify_log` names the first entry that does not hold.

A plain hash chain cannot stop someone who rewrites the whole file with fresh hashes, nor see lines cut off
the end: keep the head hash that `apply`/`verify` print somewhere else (a ticket, the scheduler's log) and
compare. The file is created 0o600 (it names people), appended under an exclusive lock (two runs never fork
the chain) and fsynced line by line. Nothing secret goes in: entries hold ids, emails, states and reasons.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.store import utcnow

GENESIS = "0" * 64
FILE_MODE = 0o600


class AuditError(Exception):
    """The log cannot be opened, locked or trusted; the message says why."""


def canonical_line(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def line_hash(line: bytes) -> str:
    """What the next entry's `prev_hash` must be: the sha256 of this line's bytes (without the newline)."""
    return hashlib.sha256(line).hexdigest()


def entry_hash(entry: dict[str, Any]) -> str:
    """An entry's own hash: its canonical content without the `hash` field."""
    return hashlib.sha256(canonical_line({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int  # entries that verified
    head: str  # hash of the last good line (GENESIS for an empty log): the value to keep elsewhere
    broken_entry: int | None = None  # 1-based entry (= line) number of the first bad entry
    reason: str | None = None


def _check_lines(data: bytes) -> VerifyResult:
    prev = GENESIS
    if not data:
        return VerifyResult(True, 0, prev)
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    for number, line in enumerate(complete, start=1):
        reason = _check_line(line, number, prev)
        if reason is not None:
            return VerifyResult(False, number - 1, prev, number, reason)
        prev = line_hash(line)
    if tail:
        number = len(complete) + 1
        return VerifyResult(False, number - 1, prev, number, "last line is not terminated (a torn write?)")
    return VerifyResult(True, len(complete), prev)


def _check_line(line: bytes, number: int, prev: str) -> str | None:
    """Why line `number` does not hold, or None."""
    try:
        entry = json.loads(line)
    except ValueError:
        return "not valid JSON"
    if not isinstance(entry, dict):
        return "not a JSON object"
    if entry.get("seq") != number:
        return f"seq is {entry.get('seq')!r}, expected {number} (an entry was removed, added or moved)"
    if entry.get("prev_hash") != prev:
        return "prev_hash does not match the previous line (an entry before it was changed or removed)"
    if entry.get("hash") != entry_hash(entry):
        return "hash does not match the entry's content (the entry was edited)"
    if canonical_line(entry) != line:
        return "the line is not in canonical form (it was re-written)"
    return None


def verify_log(path: Path) -> VerifyResult:
    """Check the whole chain; FileNotFoundError when there is no log."""
    return _check_lines(Path(path).read_bytes())


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Every entry, after checking the chain: acting on a log that was tampered with is refused."""
    data = Path(path).read_bytes()
    result = _check_lines(data)
    if not result.ok:
        raise AuditError(f"{path}: entry {result.broken_entry} is broken: {result.reason}")
    return [json.loads(line) for line in data.split(b"\n") if line]


def default_actor() -> dict[str, str]:
    """Who ran it: the login name and the host, as far as the OS can tell."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"user": user, "host": socket.gethostname()}


class AuditLog:
    """An open, locked, verified log to append entries to. Use as a context manager.

    Opening refuses a log whose chain is already broken: extending it would bury the break under valid
    entries, and `undo` trusts what the log says.
    """

    def __init__(self, path: Path, actor: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.actor = actor or default_actor()
        self._fd: int | None = None
        self._prev = GENESIS
        self._seq = 0
        self.appended = 0

    def __enter__(self) -> AuditLog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def head(self) -> str:
        return self._prev

    def open(self) -> None:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, FILE_MODE)
        except OSError as exc:
            raise AuditError(f"audit log {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AuditError(f"audit log {self.path} is in use by another remediation run") from None
            raise AuditError(f"audit log {self.path}: cannot lock: {exc.strerror}") from None
        try:
            data = _read_all(fd)
        except OSError as exc:
            os.close(fd)
            raise AuditError(f"audit log {self.path}: {exc.strerror}") from None
        result = _check_lines(data)
        if not result.ok:
            os.close(fd)
            raise AuditError(
                f"audit log {self.path} fails verification at entry {result.broken_entry} ({result.reason}); "
                "refusing to extend it: keep it as evidence and use a new log"
            )
        self._fd, self._prev, self._seq = fd, result.head, result.entries

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add one entry (seq, ts, actor, prev_hash and hash are filled in); returns it as written."""
        if self._fd is None:
            raise AuditError("audit log is not open")
        entry = {
            **record,
            "seq": self._seq + 1,
            "ts": utcnow(),
            "actor": self.actor,
            "prev_hash": self._prev,
        }
        entry["hash"] = entry_hash(entry)
        line = canonical_line(entry)
        payload = memoryview(line + b"\n")
        try:
            while payload:
                payload = payload[os.write(self._fd, payload) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise AuditError(f"audit log {self.path}: cannot append: {exc.strerror}; stopping") from None
        self._prev, self._seq = line_hash(line), self._seq + 1
        self.appended += 1
        return entry

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
