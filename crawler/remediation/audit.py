"""The audit log: one JSON line per remediation step, hash-chained and keyed so that no entry can be forged.

Each line is canonical JSON (sorted keys, no spaces) and carries `prev_hash`, the sha256 of the previous
line's bytes (64 zeros for the first), `hash`, the sha256 of its own canonical content without `hash` and
`mac`, and `mac`, the HMAC-SHA256 of its content without `mac` under the remediation key (`keys`).
Editing a field breaks that entry's `hash`; deleting, inserting or reordering lines breaks the next
`prev_hash` and the `seq` numbering; an entry written without the key — even a self-consistent one
appended at the end, or a whole rewritten file — fails its `mac`. `verify_log` names the first entry that
does not hold.

Lines cut off the end leave a valid, shorter chain: keep the head hash that `apply`/`undo`/`verify` print
somewhere else (a ticket, the scheduler's log) and pass it back as `expect_head`; a log that no longer
contains that line is refused.

A write interrupted half-way (a full disk, a crash) leaves a torn last line without its newline. It is not
an entry: reading ignores it (every complete entry before it still counts) and the next `AuditLog.open`
cuts it off and appends a `recovery` entry that keeps its text. The file is created 0o600 (it names
people), appended under an exclusive lock (two runs never fork the chain) and fsynced line by line.
Nothing secret goes in: entries hold ids, emails, states and reasons — never the key.
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

from crawler.private import make_private_dirs
from crawler.remediation.keys import mac, same
from crawler.runs import utcnow

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
    """An entry's own hash: its canonical content without the `hash` and `mac` fields."""
    return hashlib.sha256(
        canonical_line({k: v for k, v in entry.items() if k not in ("hash", "mac")})
    ).hexdigest()


def entry_mac(entry: dict[str, Any], key: bytes) -> str:
    """An entry's MAC: its canonical content without `mac`, under the remediation key."""
    return mac(key, canonical_line({k: v for k, v in entry.items() if k != "mac"}))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int  # entries that verified
    head: str  # hash of the last good line (GENESIS for an empty log): the value to keep elsewhere
    broken_entry: int | None = None  # 1-based entry (= line) number of the first bad entry
    reason: str | None = None
    torn_tail: bytes = b""  # an unterminated last line (an interrupted write): not an entry, ignored
    heads: tuple[str, ...] = ()  # the hash of every good line, in order (for `expect_head`)
    complete_bytes: int = 0  # where the good lines end: what a recovery truncates to


def _check_lines(data: bytes, key: bytes, expect_head: str | None = None) -> VerifyResult:
    prev = GENESIS
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    heads: list[str] = []
    for number, line in enumerate(complete, start=1):
        reason = _check_line(line, number, prev, key)
        if reason is not None:
            return VerifyResult(False, number - 1, prev, number, reason, heads=tuple(heads))
        prev = line_hash(line)
        heads.append(prev)
    size = len(data) - len(tail)
    result = VerifyResult(True, len(complete), prev, torn_tail=tail, heads=tuple(heads), complete_bytes=size)
    if expect_head is not None:
        reason = head_problem(result, expect_head)
        if reason is not None:
            return VerifyResult(False, len(complete), prev, None, reason, tail, tuple(heads), size)
    return result


def head_problem(result: VerifyResult, expect_head: str) -> str | None:
    """Why a log does not contain the head recorded earlier (it was truncated or rewritten), or None.

    The log may have grown since: the recorded head must be the hash of one of its lines (exactly, in full).
    """
    wanted = expect_head.strip().lower()
    if len(wanted) != 64:
        return f"--expect-head must be the full 64-character head hash, not {expect_head!r}"
    if same(wanted, GENESIS) or any(same(wanted, h) for h in result.heads):
        return None
    return (
        f"the expected head {wanted[:16]}… is not in the log (head now {result.head[:16]}…, "
        f"{result.entries} entries): entries were cut off or the log was replaced"
    )


def _check_line(line: bytes, number: int, prev: str, key: bytes) -> str | None:
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
    if not isinstance(entry.get("mac"), str) or not same(entry["mac"], entry_mac(entry, key)):
        return "mac does not match: the entry was not written with the remediation key (forged or edited)"
    if canonical_line(entry) != line:
        return "the line is not in canonical form (it was re-written)"
    return None


def verify_log(path: Path, key: bytes, expect_head: str | None = None) -> VerifyResult:
    """Check the whole chain (and that it still contains `expect_head`); FileNotFoundError without a log."""
    return _check_lines(Path(path).read_bytes(), key, expect_head)


def verify_log_bytes(data: bytes, key: bytes, expect_head: str | None = None) -> VerifyResult:
    """`verify_log` of a log's content (b"" for a log that does not exist)."""
    return _check_lines(data, key, expect_head)


def read_entries(path: Path, key: bytes, expect_head: str | None = None) -> list[dict[str, Any]]:
    """Every complete entry, after checking the chain: acting on a log that was tampered with is refused.

    A torn last line is not an entry and is left out: the entries before it are as good as they were.
    """
    data = Path(path).read_bytes()
    result = _check_lines(data, key, expect_head)
    if not result.ok:
        where = f"entry {result.broken_entry} is broken" if result.broken_entry else "refused"
        raise AuditError(f"{path}: {where}: {result.reason}")
    return entries_of(data, result)


def entries_of(data: bytes, verified: VerifyResult) -> list[dict[str, Any]]:
    """The complete entries of log bytes `verify_log_bytes` checked (a torn last line left out)."""
    return [json.loads(line) for line in data[: verified.complete_bytes].split(b"\n") if line]


def open_intents(entries: list[dict[str, Any]]) -> list[int]:
    """Seqs of intents no outcome settles: the run stopped around those writes, so their result is unknown."""
    settled = {e.get("intent_seq") for e in entries if e.get("phase") == "outcome"}
    return [e["seq"] for e in entries if e.get("phase") == "intent" and e["seq"] not in settled]


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

    def __init__(
        self, path: Path, *, key: bytes, actor: dict[str, str] | None = None, expect_head: str | None = None
    ) -> None:
        self.path = Path(path)
        self._key = key
        self.expect_head = expect_head
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
            make_private_dirs(self.path.parent)
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
        result = _check_lines(data, self._key, self.expect_head)
        if not result.ok:
            os.close(fd)
            if result.broken_entry is None:  # the chain holds but the recorded head is not in it
                raise AuditError(f"audit log {self.path}: {result.reason}; refusing to extend it")
            raise AuditError(
                f"audit log {self.path} fails verification at entry {result.broken_entry} ({result.reason}); "
                "refusing to extend it: keep it as evidence and use a new log"
            )
        self._fd, self._prev, self._seq = fd, result.head, result.entries
        if result.torn_tail:
            self._recover(result)

    def _recover(self, result: VerifyResult) -> None:
        """Cut off a torn last line (an interrupted write) and say so in the log, keeping what it held."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, result.complete_bytes)
            os.fsync(self._fd)
        except OSError as exc:
            self.close()
            raise AuditError(
                f"audit log {self.path}: cannot cut off a torn last line: {exc.strerror}"
            ) from None
        torn = result.torn_tail
        self.append(
            {
                "phase": "recovery",
                "action": "recover",
                "result": "truncated",
                "reason": f"a torn last line of {len(torn)} bytes (an interrupted write) was cut off",
                "torn_line": torn[:4096].decode("utf-8", errors="replace"),
                "torn_sha256": hashlib.sha256(torn).hexdigest(),
            }
        )

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
        entry["mac"] = entry_mac(entry, self._key)
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
