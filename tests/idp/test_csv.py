"""CSV source: configured columns and vocabulary; unknown statuses and missing emails quarantined, never
guessed; a missing file or column fails the source, naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crawler.errors import SourceError
from crawler.idp import csv_source
from crawler.orchestrator import crawl
from crawler.records import IdentityStatus

EXPORT = """\
employee_id,work_email,state,other_addresses,changed,last_seen
e1,Ana.Silva@acme.com,Active,ana.s@acme.com;a.silva@acme.com,2025-03-01T10:00:00Z,2025-05-01
e2,ben.smith@acme.com,TERMINATED,,2025-04-15,
e3,chloe.garcia@acme.com,pending,,,
e4,david.muller@acme.com,on leave,,,
e5,,active,,,
e6,elena.rossi@acme.com,disabled,,not a date,
"""
COLUMNS = {
    "id": "employee_id",
    "email": "work_email",
    "status": "state",
    "aliases": "other_addresses",
    "status_changed_at": "changed",
    "last_login": "last_seen",
}


def csv_config(tools: Any, path: Path, name: str = "hr-export", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "csv", "path": str(path), "columns": COLUMNS, **extra}


async def test_rows_statuses_aliases_and_quarantine(tools, store, tmp_path, monkeypatch):
    monkeypatch.setattr(csv_source, "ROWS_PER_COMMIT", 4)
    path = tmp_path / "export.csv"
    path.write_text(EXPORT, encoding="utf-8")
    cfg = tools.idp(csv_config(tools, path))

    outcome = await tools.crawl_one(csv_source.open_source, cfg, store)

    assert outcome.error is None
    rows = outcome.by_id()
    assert {k: (r["raw_status"], r["status"]) for k, r in rows.items()} == {
        "e1": ("Active", IdentityStatus.ACTIVE),
        "e2": ("TERMINATED", IdentityStatus.DISABLED),
        "e3": ("pending", IdentityStatus.NOT_ACTIVATED),
        "e6": ("disabled", IdentityStatus.DISABLED),
    }
    assert outcome.addresses("e1") == {
        "Ana.Silva@acme.com": (True, "email"),
        "ana.s@acme.com": (False, "alias"),
        "a.silva@acme.com": (False, "alias"),
    }
    assert rows["e1"]["status_changed_at"] == "2025-03-01T10:00:00Z"
    assert rows["e1"]["last_login"] == "2025-05-01T00:00:00Z"
    assert rows["e6"]["status_changed_at"] is None  # a bad date costs the date, not the person
    reasons = sorted(q["reason"] for q in store.quarantined(outcome.run_id))
    assert reasons == [
        "no email in column 'work_email'",
        "status 'on leave' is not in the status vocabulary "
        "(active_values/disabled_values/not_activated_values)",
    ]
    assert outcome.ctx.progress.quarantined == 2
    # The quarantined row still says who it is, and where in the file it is.
    assert store.quarantined_addresses(outcome.run_id) == {
        "david.muller@acme.com": [
            (
                "hr-export",
                "status 'on leave' is not in the status vocabulary "
                "(active_values/disabled_values/not_activated_values)",
            )
        ]
    }
    assert {q["label"]: q["addresses"] for q in store.quarantined(outcome.run_id)} == {
        "row 5": ["david.muller@acme.com"],
        "row 6": [],
    }
    assert outcome.ctx.progress.notes == [
        "unknown status values seen: 'on leave' (1 row): "
        "map them with active_values / disabled_values / not_activated_values"
    ]
    users = outcome.collections()["users"]
    assert (users["done"], users["pages"], users["records"]) == (1, 2, 4)


async def test_semicolon_export_with_bom_and_custom_vocabulary(tools, store, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("\ufeffid;email;status\n1;a@acme.com;Aktiv\n2;b@acme.com;Gekündigt\n", encoding="utf-8")
    cfg = tools.idp(
        {
            "name": "hr-de",
            "type": "csv",
            "path": str(path),
            "active_values": ["aktiv"],
            "disabled_values": ["gekündigt"],
        }
    )

    outcome = await tools.crawl_one(csv_source.open_source, cfg, store)

    assert outcome.error is None
    assert {k: r["status"] for k, r in outcome.by_id().items()} == {"1": "active", "2": "disabled"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ("employee_id,work_email,other_addresses,changed,last_seen\n", "column 'state' (columns.status)"),
        ("", "is empty"),
    ],
)
async def test_missing_file_or_column_fails_the_source(tools, store, tmp_path, content, expected):
    path = tmp_path / "export.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    cfg = tools.idp(csv_config(tools, path))

    outcome = await tools.crawl_one(csv_source.open_source, cfg, store)

    assert isinstance(outcome.error, SourceError) and expected in str(outcome.error)
    assert outcome.collections() == {}


async def test_orchestrator_counts_quarantine_and_isolates_a_broken_file(tools, store, tmp_path):
    good = tmp_path / "export.csv"
    good.write_text(EXPORT, encoding="utf-8")
    config = tools.config(
        {
            "idps": [
                csv_config(tools, good),
                csv_config(tools, tmp_path / "missing.csv", name="hr-old"),
            ]
        }
    )

    result = await crawl(config, store)

    coverage = {c.source: c for c in result.coverage}
    assert coverage["hr-export"].complete
    assert (coverage["hr-export"].records, coverage["hr-export"].quarantined) == (4, 2)
    assert not coverage["hr-old"].complete and "missing.csv" in (coverage["hr-old"].error or "")


async def test_unknown_status_values_are_named_once_with_their_counts(tools, store, tmp_path):
    path = tmp_path / "export.csv"
    rows = ["id,email,status"]
    rows += [f"l{i},leave{i}@acme.com,Leave" for i in range(3)]
    rows += ["s1,Sam.Second@Acme.com,Secondment", "a1,ann@acme.com,active"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = tools.idp({"name": "hr", "type": "csv", "path": str(path)})

    outcome = await tools.crawl_one(csv_source.open_source, cfg, store)

    assert outcome.error is None
    assert outcome.ctx.progress.notes == [
        "unknown status values seen: 'Leave' (3 rows), 'Secondment' (1 row): "
        "map them with active_values / disabled_values / not_activated_values"
    ]
    summary = store.quarantine_summary(outcome.run_id)["hr"]
    assert summary.count == 4
    assert [(r.reason, r.count, r.examples) for r in summary.reasons] == [
        (
            "status 'Leave' is not in the status vocabulary "
            "(active_values/disabled_values/not_activated_values)",
            3,
            ["row 2 (leave0@acme.com)", "row 3 (leave1@acme.com)", "row 4 (leave2@acme.com)"],
        ),
        (
            "status 'Secondment' is not in the status vocabulary "
            "(active_values/disabled_values/not_activated_values)",
            1,
            ["row 5 (sam.second@acme.com)"],
        ),
    ]
    assert store.quarantined_addresses(outcome.run_id)["sam.second@acme.com"][0][0] == "hr"
