"""The quarantine table: addresses and a short label per record, a per-source summary for the reports, and
the migration that brings a snapshot written before those columns up to date."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from crawler.store import SCHEMA_VERSION, QuarantineReason, QuarantineSummary, SnapshotStore

OLD_QUARANTINE = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT,
    status TEXT NOT NULL, config_fingerprint TEXT
);
CREATE TABLE quarantine (
    run_id INTEGER NOT NULL, source TEXT NOT NULL, collection TEXT NOT NULL,
    reason TEXT NOT NULL, record TEXT
);
INSERT INTO quarantine VALUES (1, 'okta', 'users', 'unknown Okta status ''X''', '{"id": "00u1"}');
"""


def test_an_old_snapshot_gets_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_QUARANTINE)

    with SnapshotStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        [row] = store.quarantined(1)
        assert (row["reason"], row["addresses"], row["label"]) == ("unknown Okta status 'X'", [], None)
        assert store.quarantine_summary(1) == {
            "okta": QuarantineSummary(1, [QuarantineReason("unknown Okta status 'X'", 1, ["id 00u1"])])
        }
        store.quarantine(1, "okta", "users", "again", {"id": "00u2"}, addresses=["A@x.com"])
    with SnapshotStore(path) as store:  # opening twice migrates once
        assert store.schema_version() == 3
        assert store.quarantined_addresses(1) == {"a@x.com": [("okta", "again")]}


def test_old_callers_still_work_and_reasons_stay_short(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s.db") as store:
        store.quarantine(1, "lu", "users", "x" * 1000, {"id": 7, "password": "never shown"})
        [row] = store.quarantined(1)
        assert len(row["reason"]) <= 200 and row["addresses"] == []


def test_summary_counts_reasons_with_at_most_three_short_examples(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s.db") as store:
        secret_row = {"email": "a@acme.com", "token": "s3cr3t-value", "notes": "a very long raw row"}
        for n in range(5):
            store.quarantine(
                1, "hr", "users", "status 'Leave' is unknown", secret_row,
                addresses=[f" Person{n}@Acme.com "], label=f"row {n + 2}",
            )  # fmt: skip
        store.quarantine(1, "hr", "users", "no email", secret_row, label="row 9")
        store.quarantine(1, "okta", "users", "unknown Okta status 'X'", {"status": "X"})
        store.quarantine(2, "hr", "users", "another run", {})

        summary = store.quarantine_summary(1)

        assert set(summary) == {"hr", "okta"}
        hr = summary["hr"]
        assert hr.count == 6
        assert [(r.reason, r.count) for r in hr.reasons] == [
            ("status 'Leave' is unknown", 5),
            ("no email", 1),
        ]
        assert hr.reasons[0].examples == [
            "row 2 (person0@acme.com)",
            "row 3 (person1@acme.com)",
            "row 4 (person2@acme.com)",
        ]
        assert hr.reasons[1].examples == ["row 9"]
        assert summary["okta"].reasons[0].examples == ["record #7"]
        text = json.dumps({k: v.as_dict() for k, v in summary.items()})
        assert "s3cr3t" not in text and "raw row" not in text
        assert hr.as_dict()["reasons"][1] == {"reason": "no email", "count": 1, "examples": ["row 9"]}
        assert store.quarantined_addresses(1)["person4@acme.com"] == [("hr", "status 'Leave' is unknown")]
        assert len(store.quarantined_addresses(1)) == 5


def test_a_quarantined_record_keeps_no_configured_secret(tmp_path) -> None:
    from crawler.redact import REDACTOR

    secret = "tok-9f8e7d6c5b4a3f2e1d"
    REDACTOR.add(secret)
    with SnapshotStore(tmp_path / "s.db") as store:
        run = store.start_run([("hr", "csv")])
        store.quarantine(run, "hr", "identities", f"echoed {secret}", {"token": secret}, label=secret)
        (row,) = store.quarantined(run)
        assert secret not in f"{row['reason']} {row['label']} {row['record']}"
        assert secret not in str(store.quarantine_summary(run)["hr"].as_dict())
