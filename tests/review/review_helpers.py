"""Shared by the review tests: a small estate under review, hand-built with the graph tests' snapshot
builder (imported by path, not copied), and helpers to export, edit and import decisions files the way a
reviewer does.

    ana   okta disabled 30 days before the run; emea learner, last in 40 days before -> idp_disabled_active
    bob   okta disabled 10 days before; emea and apac learner, signed in 2 days before
                                                        -> idp_disabled_active + active_after_offboarding, x2
    svc   svc-backup@acme.com, in no IdP; emea admin    -> not_in_idp (high)
    glass breakglass-1@acme.com, in no IdP; apac admin  -> not_in_idp (high): a rule may exclude it
    dora  okta active; emea learner, last in 200 days   -> dormant
    lead  okta active; emea admin (recent) and apac learner (last in 300 days) -> dormant (apac): the
          reviewer's own account
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from by_path import run_builder

from crawler.store import SnapshotStore
from graph.campaign import RunReview, open_review
from graph.decisions_file import render_export
from graph.history import save_review_settings
from graph.review import report_input
from graph.rules import ReviewSettings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ReviewSettings(("acme.com",), 90)
REVIEWER = "lead@acme.com"
OTHER_REVIEWER = "auditor.two@acme.com"


RunBuilder = run_builder()


def days_ago(n: float) -> str:
    """An ISO start time `n` days before now: runs are dated in the past so exceptions can still be valid."""
    from datetime import timedelta

    return (datetime.now(UTC) - timedelta(days=n)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def write_run(
    store: SnapshotStore,
    *,
    started_at: str | None = None,
    changes: dict[str, Any] | None = None,
    incomplete: dict[str, str] | None = None,
    settings: ReviewSettings | None = None,
) -> int:
    """One run of the estate, its [review] settings saved with it; `changes` per account key ("ana",
    "bob-apac", …, or "idp:ana" for an identity) override its fields."""
    run = RunBuilder(store, ["emea", "apac"], ["okta"], started_at or days_ago(1), dict(incomplete or {}))
    changes = changes or {}
    accounts = {
        "ana": ("emea", 1, "ana@acme.com", {"last_sign_in_at": run.ago(40)}),
        "bob": ("emea", 2, "bob@acme.com", {"last_sign_in_at": run.ago(2)}),
        "bob-apac": ("apac", 3, "Bob@acme.com", {"last_sign_in_at": run.ago(2)}),
        "svc": ("emea", 4, "svc-backup@acme.com", {"user_type": "admin", "username": "svc-backup"}),
        "glass": ("apac", 9, "breakglass-1@acme.com", {"user_type": "admin"}),
        "dora": ("emea", 6, "dora@acme.com", {"last_sign_in_at": run.ago(200)}),
        "lead": ("emea", 5, "lead@acme.com", {"user_type": "admin"}),
        "lead-apac": ("apac", 8, "Lead@acme.com", {"last_sign_in_at": run.ago(300)}),
    }
    for key, (portal, user_id, email, fields) in accounts.items():
        run.user(portal, user_id, email, **{**fields, **changes.get(key, {})})
    identities = {
        "ana": ("00u-ana", "ana@acme.com", {"status": "disabled", "status_changed_at": run.ago(30)}),
        "bob": ("00u-bob", "bob@acme.com", {"status": "disabled", "status_changed_at": run.ago(10)}),
        "dora": ("00u-dora", "dora@acme.com", {}),
        "lead": ("00u-lead", "lead@acme.com", {}),
        "two": ("00u-two", OTHER_REVIEWER, {}),
    }
    for key, (idp_id, address, fields) in identities.items():
        run.identity("okta", idp_id, address, **{**fields, **changes.get(f"idp:{key}", {})})
    run_id = int(run.finish())
    save_review_settings(store, run_id, settings or SETTINGS)
    return run_id


@contextmanager
def reviewing(
    db: Path, run_id: int | None = None, settings: ReviewSettings | None = None
) -> Iterator[tuple[SnapshotStore, RunReview]]:
    with SnapshotStore(db) as store, open_review(store, run_id, settings) as review:
        yield store, review


def export_rows(db: Path, run_id: int | None = None) -> list[dict[str, str]]:
    """The decisions file `review export` writes, parsed as a spreadsheet would open it."""
    with reviewing(db, run_id) as (store, review):
        text = render_export(review, report_input(store, review))
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def to_csv(rows: list[dict[str, str]]) -> bytes:
    """Rows back to bytes, as a spreadsheet saves them (UTF-8, with the byte order mark)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def row_of(rows: list[dict[str, str]], finding: str, email: str, portal: str | None = None) -> dict[str, str]:
    (row,) = [
        r for r in rows
        if r["finding"] == finding and r["email"].casefold() == email and portal in (None, r["portal"])
    ]  # fmt: skip
    return row


def decide(row: dict[str, str], decision: str, reason: str = "reviewed", **extra: str) -> dict[str, str]:
    row.update(decision=decision, reason=reason, **extra)
    return row


def idgraph(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m idgraph.cli …` in a subprocess, stdin not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "idgraph.cli", *args], capture_output=True, text=True, timeout=180,
        cwd=cwd, env={**os.environ, "COLUMNS": "200", **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
