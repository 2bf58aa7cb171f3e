"""A quarterly access review end to end, on the simulator and a fake Okta on loopback: crawl → `review
export` → a reviewer edits (revoke some, an exception for some, keep some) → `review import` → `remediate
plan --from-review` → apply → second crawl → `review evidence`. Real servers, real files, the CLI in
subprocesses; the evidence summary is opened in headless Chromium."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from by_path import load

from crawler.orchestrator import crawl
from crawler.remediation.audit import read_entries
from crawler.remediation.plan import load_plan
from crawler.store import SnapshotStore
from graph.review import review_run
from graph.rules import ReviewSettings

KEY = b"remediation-SECRET-key-2b7d41c9e8a3"  # conftest.REMEDIATION_KEY
REVIEWER = "review.lead@example.org"
SHORT_EXCEPTION_SECONDS = 4  # expires before the second crawl starts (the test waits it out)


def _cdp() -> ModuleType:
    return load("reports/cdp.py", "_idgraph_review_cdp")


async def idgraph(estate, *args: str) -> tuple[int, str, str]:
    """`python -m idgraph.cli …` in a subprocess, in the estate's directory, with its environment."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "idgraph.cli", *args,
        env={**os.environ, **estate.env, "COLUMNS": "250"}, cwd=estate.tmp,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    return proc.returncode or 0, out.decode(), err.decode()


def _read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(("\ufeff" + buffer.getvalue()).encode("utf-8"))


def _choose(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """The reviewer's choices: each on a different person, so no decision touches another's account."""
    used: set[str] = set()
    orphans = [r for r in rows if r["finding"] == "idp_disabled_active" and r["email"]]
    dormant = [r for r in rows if r["finding"] == "dormant" and r["email"]]
    accounts = {(r["portal"], r["learnupon_user_id"]) for r in dormant}
    both = [r for r in orphans if (r["portal"], r["learnupon_user_id"]) in accounts]
    chosen: dict[str, list[dict[str, str]]] = {}

    def take(name: str, pool: list[dict[str, str]], n: int) -> None:
        picked = []
        for row in pool:
            person = row["email"].casefold()
            if person not in used and len(picked) < n:
                picked.append(row)
                used.add(person)
        assert len(picked) == n, f"the estate lacks {name}"
        chosen[name] = picked

    take("excepted_and_revoked", both, 1)
    take("revoke", orphans, 3)
    take("exception", orphans, 1)
    take("short_exception", orphans, 1)
    take("keep", dormant, 2)
    return chosen


def _account(row: dict[str, str]) -> tuple[str, int]:
    return row["portal"], int(row["learnupon_user_id"])


async def test_a_quarterly_review_from_crawl_to_evidence(estate) -> None:
    db, config = str(estate.db), str(estate.config_path)
    decisions = estate.tmp / "decisions.csv"

    # --- export: one row per open finding, decision columns empty ------------------------------------
    code, out, err = await idgraph(estate, "review", "export", "--db", db, "--run", str(estate.run_id),
                                   "--out", str(decisions), "--config", config)  # fmt: skip
    assert code == 0, err
    rows = _read_csv(decisions)
    assert rows and all(r["decision"] == "" for r in rows) and f"{len(rows)} open finding(s)" in out

    # --- the reviewer decides ------------------------------------------------------------------------------
    chosen = _choose(rows)
    short_until = datetime.now(UTC) + timedelta(seconds=SHORT_EXCEPTION_SECONDS)
    long_until = (datetime.now(UTC) + timedelta(days=90)).date().isoformat()
    (both,) = chosen["excepted_and_revoked"]
    both.update(decision="exception", scope="account", expires_at=long_until, reason="contractor, renewed")
    for row in rows:
        if _account(row) == _account(both) and row["finding"] == "dormant":
            row.update(decision="revoke", reason="unused for months")
    for row in chosen["revoke"]:
        row.update(decision="revoke", reason="left the company; HR ticket 4411")
    for row in chosen["exception"]:
        row.update(decision="exception", scope="account", expires_at=long_until, reason="board observer")
    for row in chosen["short_exception"]:
        row.update(decision="exception", scope="account", reason="handover this week",
                   expires_at=short_until.isoformat(timespec="seconds").replace("+00:00", "Z"))  # fmt: skip
    for row in chosen["keep"]:
        row.update(decision="keep", reason="still teaches the onboarding course")
    _write_csv(decisions, rows)

    code, out, err = await idgraph(estate, "review", "import", str(decisions), "--reviewer", REVIEWER,
                                   "--db", db)  # fmt: skip
    assert code == 0, err
    assert "imported 9 decision(s)" in out and "4 revoke, 2 keep, 3 exception" in out

    # --- plan from the decisions: exactly the revokes that stand ------------------------------------------
    plan_path = estate.tmp / "plan.json"
    code, out, err = await estate.cli("plan", "--from-review", "--db", db, "--config", config,
                                      "--out", str(plan_path))  # fmt: skip
    assert code == 0, err
    plan = load_plan(plan_path, KEY)
    revoked = {_account(r) for r in chosen["revoke"]}
    assert {(a.portal, a.user_id) for a in plan.actions} == revoked
    assert plan.selection.finding == "review"
    assert all(a.finding.evidence["review_decision"]["reviewer"] == REVIEWER for a in plan.actions)
    portal, user_id = _account(both)
    assert f"not planned: {portal}/{user_id}" in out and "under a live exception" in out  # the plan: stdout

    # --- apply it; a second apply of the same plan is refused before any request --------------------------
    log = estate.tmp / "audit.jsonl"
    apply = ("apply", str(plan_path), "--config", config, "--yes", "--plan-hash", plan.plan_hash,
             "--log", str(log))  # fmt: skip
    code, out, err = await estate.cli(*apply)
    assert code == 0, err
    head = next(line.split()[1] for line in out.splitlines() if line.startswith("head "))
    assert all(estate.user(p, u)["enabled"] is False for p, u in revoked)
    puts = sum(p.stats.by_endpoint["PUT /users/{id}"] for p in estate.sim.portals)
    code, _, err = await estate.cli(*apply)
    assert code == 2 and "was already applied" in err and "a plan is single-use" in err
    assert sum(p.stats.by_endpoint["PUT /users/{id}"] for p in estate.sim.portals) == puts

    # --- the second crawl, after the short exception expired ----------------------------------------------
    time.sleep(max(0.0, (short_until - datetime.now(UTC)).total_seconds()) + 1)
    with SnapshotStore(estate.db) as store:
        second = await crawl(estate.config(), store)
    assert second.complete
    settings = ReviewSettings.from_config(estate.config().review)  # what `idgraph crawl` saves with a run
    review = review_run(estate.db, estate.tmp / "report", run_id=second.run_id, settings=settings)
    resolved = {(e.portal, e.learnupon_user_id) for e in review.diff.resolved}
    assert revoked <= resolved, "every revoked account is resolved: re-read, and disabled"
    document = json.loads(review.paths["json"].read_text())
    accepted = {(r["portal"], r["learnupon_user_id"], r["finding"]) for r in document["accepted"]}
    assert accepted == {
        (*_account(r), "idp_disabled_active") for r in chosen["exception"] + chosen["excepted_and_revoked"]
    }
    (back,) = [r for r in document["findings"] if (r["portal"], r["learnupon_user_id"]) ==
               _account(chosen["short_exception"][0]) and r["finding"] == "idp_disabled_active"]  # fmt: skip
    assert back["review_state"] == "open" and "expired at" in back["review_note"]
    assert "handover this week" in back["review_note"]

    # --- the evidence pack ------------------------------------------------------------------------------
    pack = estate.tmp / "evidence"
    args = ("review", "evidence", "--db", db, "--run", str(second.run_id), "--log", str(log),
            "--config", config, "--expect-head", head)  # fmt: skip
    code, out, err = await idgraph(estate, *args, "--out", str(pack))
    assert code == 0, err
    sums = (pack / "SHA256SUMS").read_text()
    assert out.strip().endswith(hashlib.sha256(sums.encode()).hexdigest())
    _check_pack(pack, sums, head=head, log=log, decisions=decisions, chosen=chosen, revoked=revoked)
    code, _, err = await idgraph(estate, *args, "--out", str(estate.tmp / "again"))
    assert code == 0, err
    _same_bytes(pack, estate.tmp / "again")
    code, _, err = await idgraph(estate, *args, "--out", str(pack))
    assert code == 2 and "never overwritten" in err
    await _check_summary_in_a_browser(pack / "summary.html", head=head, chosen=chosen)

    # --- an undo, then the plan again: refused, the account stays as the undo left it -------------------
    entries = read_entries(log, KEY)
    first = next(e for e in entries if e["phase"] == "outcome" and e["action"] == "disable")
    code, _, err = await estate.cli("undo", str(log), "--entry", str(first["seq"]), "--config", config,
                                    "--yes", "--force")  # fmt: skip
    assert code == 0, err
    assert estate.user(first["portal"], first["user_id"])["enabled"] is True
    code, _, err = await estate.cli(*apply)
    assert code == 2 and "was applied and then undone" in err and "would undo the undo" in err
    assert estate.user(first["portal"], first["user_id"])["enabled"] is True
    for secret in estate.secrets:
        assert all(secret not in p.read_text(errors="replace") for p in pack.rglob("*") if p.is_file())


def _check_pack(
    pack: Path, sums: str, *, head: str, log: Path, decisions: Path, chosen: dict[str, Any], revoked: set[Any]
) -> None:
    """The manifest verifies and lists exactly the pack's files; the files hold exactly the review's facts."""
    files = sorted(p.relative_to(pack).as_posix() for p in pack.rglob("*") if p.is_file())
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in sums.splitlines()}
    assert sorted(listed) == sorted(set(files) - {"SHA256SUMS"})
    for path, digest in listed.items():
        assert hashlib.sha256((pack / path).read_bytes()).hexdigest() == digest, path
    manifest = json.loads((pack / "manifest.json").read_text())
    assert sorted(f["path"] for f in manifest["files"]) == sorted(
        set(files) - {"SHA256SUMS", "manifest.json"}
    )
    assert all(f["sha256"] == listed[f["path"]] for f in manifest["files"])
    assert files == sorted(
        [
            "SHA256SUMS", "manifest.json", "run.json", "summary.html", "findings.csv", "exceptions.csv",
            "exclusions.csv", "population/accounts.csv", "population/coverage.json",
            "decisions/decisions.csv", "decisions/imports.csv", "decisions/received/0001-"
            + hashlib.sha256(decisions.read_bytes()).hexdigest()[:12] + ".csv",
            "remediation/actions.csv", "remediation/revocations.csv", "remediation/chain.json",
            "remediation/audit.jsonl",
        ]
    )  # fmt: skip
    facts = manifest["facts"]
    assert facts["complete"] is True and facts["findings"]["accepted"] == 2
    assert facts["revocations"] == {"not executed": 1, "verified": 3}  # the excepted account's dormant revoke
    assert facts["audit_chain"]["verified"] is True and facts["audit_chain"]["head"] == head
    assert (pack / "remediation/audit.jsonl").read_bytes() == log.read_bytes()
    assert (
        pack / next(p for p in files if p.startswith("decisions/received/"))
    ).read_bytes() == decisions.read_bytes()
    revocations = _read_csv(pack / "remediation/revocations.csv")
    verified = {(r["portal"], int(r["learnupon_user_id"])) for r in revocations if r["status"] == "verified"}
    assert verified == revoked
    assert all(r["read_back_enabled"] == "false" and r["enabled_in_run"] == "false"
               for r in revocations if r["status"] == "verified")  # fmt: skip
    exceptions = _read_csv(pack / "exceptions.csv")
    assert {(r["portal"], int(r["learnupon_user_id"])) for r in exceptions} == {
        _account(r) for r in chosen["exception"] + chosen["excepted_and_revoked"]
    }, "the expired exception is not in force"
    assert all(r["reviewer"] == REVIEWER and r["reason"] for r in _read_csv(pack / "decisions/decisions.csv"))
    assert len(_read_csv(pack / "decisions/decisions.csv")) == 9
    population = _read_csv(pack / "population/accounts.csv")
    coverage = json.loads((pack / "population/coverage.json").read_text())
    for entry in coverage:
        if entry["kind"] == "learnupon":
            read = [r for r in population if r["portal"] == entry["source"]]
            assert entry["population"]["accounts_read"] == len(read) == 80
            assert entry["complete"] and entry["requests"] > 0


def _same_bytes(one: Path, two: Path) -> None:
    """Two packs of the same inputs: every file the same bytes but the manifest's generation time."""
    names = sorted(p.relative_to(one).as_posix() for p in one.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(two).as_posix() for p in two.rglob("*") if p.is_file())
    for name in names:
        if name not in ("manifest.json", "SHA256SUMS"):
            assert (one / name).read_bytes() == (two / name).read_bytes(), name
    first, second = (json.loads((d / "manifest.json").read_text()) for d in (one, two))
    first.pop("generated_at"), second.pop("generated_at")
    assert first == second


async def _check_summary_in_a_browser(path: Path, *, head: str, chosen: dict[str, Any]) -> None:
    cdp = _cdp()
    executable = cdp.find_chromium()
    if executable is None:
        message = "chromium not found: apt-get install chromium (or set IDGRAPH_CHROMIUM)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    async with cdp.Browser(executable) as browser:
        page = await browser.new_page()
        await page.goto(path.as_uri())
        assert await page.evaluate("document.getElementById('pack-banner').innerText.startsWith('Complete.')")
        assert await page.evaluate("document.getElementById('chain-head').textContent") == head
        assert await page.evaluate(
            "Array.from(document.querySelectorAll('table.population tbody th')).map(t => t.textContent)"
        ) == ["amer", "emea"]
        shown = await page.evaluate("document.querySelector('ul.revocations').innerText")
        assert "verified: 3" in shown and "not executed: 1" in shown
        excepted = await page.evaluate(
            "Array.from(document.querySelectorAll('table.exceptions tbody tr'))"
            ".map(r => r.cells[1].textContent)"
        )
        assert sorted(excepted) == sorted(
            r["email"] for r in chosen["exception"] + chosen["excepted_and_revoked"]
        )
        assert await page.evaluate("document.querySelectorAll('script').length") == 0
        await page.screenshot(path.parent.parent / "evidence-summary.png", max_height=3000)
        assert page.errors == [] and page.external_requests == []
