"""The audit log on its own: the chain, what verification catches, and how the file is kept."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from crawler.remediation.audit import GENESIS, AuditError, AuditLog, read_entries, verify_log

ACTOR = {"user": "tester", "host": "ci"}
KEY = b"audit-test-key-0123456789abcdef"


def write_entries(path: Path, count: int) -> None:
    with AuditLog(path, key=KEY, actor=ACTOR) as log:
        for i in range(count):
            log.append({"action": "disable", "portal": "emea", "user_id": 100 + i, "result": "done"})


def test_chain_links_each_line_to_the_previous_and_starts_at_genesis(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 3)
    lines = path.read_bytes().split(b"\n")[:-1]
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev_hash"] == GENESIS == "0" * 64
    for previous, line, entry in zip(lines, lines[1:], entries[1:], strict=False):
        assert entry["prev_hash"] == hashlib.sha256(previous).hexdigest()
        assert len(entry["hash"]) == 64 and entry["hash"] != json.loads(line)["prev_hash"]
    result = verify_log(path, KEY)
    assert result.ok and result.entries == 3
    assert result.head == hashlib.sha256(lines[-1]).hexdigest()


def test_log_is_created_owner_only_and_appending_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    write_entries(path, 2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_entries(path, 2)  # a second run appends to the same chain
    assert verify_log(path, KEY).entries == 4
    assert [e["seq"] for e in read_entries(path, KEY)] == [1, 2, 3, 4]


def test_an_edited_field_in_a_middle_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 5)
    lines = path.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["user_id"] = 999  # rewritten in canonical form, so only the hash can tell
    lines[2] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    result = verify_log(path, KEY)
    assert not result.ok and result.broken_entry == 3 and result.entries == 2
    assert "edited" in (result.reason or "")


def test_a_recomputed_hash_still_breaks_the_next_link(tmp_path: Path) -> None:
    from crawler.remediation.audit import entry_hash

    path = tmp_path / "audit.jsonl"
    write_entries(path, 4)
    lines = path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["result"] = "skipped"
    entry["hash"] = entry_hash(entry)
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    result = verify_log(path, KEY)
    # The keyed MAC catches the rewritten entry itself; before MACs it was the next link that broke.
    assert result.broken_entry == 2 and "mac" in (result.reason or "")


@pytest.mark.parametrize(
    ("mutate", "broken", "words"),
    [
        (lambda lines: lines[:1] + lines[2:], 2, "seq"),  # a line removed
        (lambda lines: [lines[1], lines[0], *lines[2:]], 1, "seq"),  # two lines swapped
        (lambda lines: [*lines[:2], lines[2].replace(":", ": ", 1), *lines[3:]], 3, "canonical"),
        (lambda lines: [*lines[:3], "{not json"], 4, "JSON"),
    ],
)
def test_removed_reordered_rewritten_or_garbled_lines_are_caught(
    tmp_path: Path, mutate, broken, words
) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 4)
    path.write_text("\n".join(mutate(path.read_text().splitlines())) + "\n")
    result = verify_log(path, KEY)
    assert result.broken_entry == broken and words in (result.reason or ""), result


def test_a_torn_last_line_is_reported_but_the_entries_before_it_still_count(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 2)
    with path.open("ab") as handle:
        handle.write(b'{"seq":3')
    result = verify_log(path, KEY)
    assert result.ok and result.entries == 2 and result.torn_tail == b'{"seq":3'
    assert [e["seq"] for e in read_entries(path, KEY)] == [1, 2]


def test_a_broken_log_is_never_extended_nor_read_for_undo(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 3)
    path.write_text(path.read_text().replace('"user_id":101', '"user_id":555'))
    before = path.read_bytes()
    with pytest.raises(AuditError, match="entry 2"):
        AuditLog(path, key=KEY, actor=ACTOR).open()
    with pytest.raises(AuditError, match="entry 2"):
        read_entries(path, KEY)
    assert path.read_bytes() == before


def test_two_runs_cannot_append_to_one_log_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key=KEY, actor=ACTOR) as first:
        first.append({"action": "disable"})
        with pytest.raises(AuditError, match="in use"):
            AuditLog(path, key=KEY, actor=ACTOR).open()
    write_entries(path, 1)  # released on close
    assert verify_log(path, KEY).entries == 2


def test_an_empty_log_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    result = verify_log(path, KEY)
    assert result.ok and result.entries == 0 and result.head == GENESIS
