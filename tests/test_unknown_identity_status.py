"""An HR export row whose status idgraph does not know is not an absent person: the verdicts it could change
are withheld with the reason, `idgraph report` exits 3, and mapping the status gives exact verdicts."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from crawler.config import parse_config
from crawler.orchestrator import crawl
from crawler.simulator.app import SimulatedPortal
from crawler.simulator.dataset import PortalSpec, generate_portal
from crawler.simulator.population import generate_population
from crawler.simulator.server import run_simulator
from crawler.store import SnapshotStore
from graph.api import load_run
from graph.model import Code

POPULATION = generate_population(seed=41, size=200)
DOMAINS = ["acme.com", "acme.co.uk"]


def make_portal(name: str) -> SimulatedPortal:
    spec = PortalSpec(name=name, username=f"api-{name}", password=f"key-{name}-3c2b1a", seed=5, users=150,
                      page_size=50, courses=3, groups=2)  # fmt: skip
    return SimulatedPortal(spec, generate_portal(spec, POPULATION), population=POPULATION)


def enabled_people(sim: Any) -> dict[int, list[int]]:
    """Person key -> ids of that person's enabled accounts in the portal."""
    out: dict[int, list[int]] = {}
    for uid, person in sim.data.person_of.items():
        if sim.data.users[uid]["enabled"]:
            out.setdefault(person, []).append(uid)
    return out


def write_export(path: Path, statuses: dict[int, str]) -> None:
    """Every person the IdP knows (plus the ones in `statuses`), with the status HR would write."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["employee_id", "work_email", "state"])
        for person in POPULATION:
            status = statuses.get(person.key)
            if status is None and not person.in_idp:
                continue
            writer.writerow(
                [
                    f"e{person.key}",
                    person.email,
                    status or ("Terminated" if person.idp_disabled else "Active"),
                ]
            )


async def crawl_with_export(tmp_path: Path, name: str, statuses: dict[int, str], **vocabulary: Any):
    sims = [make_portal("emea")]
    export = tmp_path / f"{name}.csv"
    write_export(export, statuses)
    env = {"LU_USER": sims[0].spec.username, "LU_KEY": sims[0].spec.password}
    async with run_simulator(sims, window_seconds=2.0) as sim:
        raw: dict[str, Any] = {
            "portals": [{
                "name": "emea", "base_url": sim.base_url("emea"), "username_env": "LU_USER",
                "password_env": "LU_KEY", "rate_window_seconds": 2.0,
            }],
            "idps": [{
                "name": "hr", "type": "csv", "path": str(export),
                "columns": {"id": "employee_id", "email": "work_email", "status": "state"}, **vocabulary,
            }],
        }  # fmt: skip
        db = tmp_path / f"{name}.db"
        with SnapshotStore(db) as store:
            result = await crawl(parse_config(raw, env=env), store)
    with load_run(db, result.run_id, managed_domains=DOMAINS) as ig:
        findings = ig.findings()
    return db, findings, sims[0]


def on(findings, code: Code, user_ids: list[int]) -> list[Any]:
    return [f for f in findings.findings if f.code is code and f.learnupon_user_id in user_ids]


async def test_unknown_hr_statuses_withhold_the_verdicts_they_could_change(tmp_path: Path) -> None:
    sim = make_portal("emea")
    accounts = enabled_people(sim)
    by_key = {p.key: p for p in POPULATION}
    leaver = next(k for k in accounts if by_key[k].idp_disabled)  # disabled in HR's own truth
    seconded = next(k for k in accounts if by_key[k].in_idp and not by_key[k].idp_disabled)
    absent = next(k for k in accounts if not by_key[k].in_idp and by_key[k].domain in DOMAINS)
    statuses = {leaver: "Leave", seconded: "Secondment", absent: "Leave"}

    db, findings, _ = await crawl_with_export(tmp_path, "unknown", statuses)
    for key in statuses:
        ids = accounts[key]
        assert on(findings, Code.IDP_DISABLED_ACTIVE, ids) == [], key
        assert on(findings, Code.NOT_IN_IDP, ids) == [], key  # HR lists them: not absent
    withheld = {u.scope: u.reason for u in findings.unavailable}
    for key, status in statuses.items():
        for uid in accounts[key]:
            reason = withheld[f"account:emea:{uid}"]
            assert f"status '{status}' is not in the status vocabulary" in reason and "quarantined" in reason
    report = subprocess.run(
        [sys.executable, "-m", "idgraph.cli", "report", "--db", str(db), "--out", str(tmp_path / "out"),
         "--format", "json"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert report.returncode == 3, report.stderr
    document = json.loads((tmp_path / "out" / "findings.json").read_text())
    (hr,) = [c for c in document["coverage"] if c["source"] == "hr"]
    assert hr["quarantine"]["count"] == 3
    assert {r["reason"] for r in hr["quarantine"]["reasons"]} >= {
        "status 'Leave' is not in the status vocabulary (active_values/disabled_values/not_activated_values)"
    }

    # Mapping the vocabulary turns the guesses nobody made into exact verdicts.
    _, mapped, _ = await crawl_with_export(
        tmp_path,
        "mapped",
        statuses,
        active_values=["active", "secondment"],
        disabled_values=["terminated", "leave"],
    )
    per_account = [u for u in mapped.unavailable if u.scope.startswith("account:")]
    # The HR export has no status-change dates: whether a leaver's account was used after they left is
    # unknown, and says so; no verdict is withheld for a status nobody could read any more.
    assert per_account and all(
        u.code is Code.ACTIVE_AFTER_OFFBOARDING and "did not say when it disabled" in u.reason
        for u in per_account
    )
    assert {f.learnupon_user_id for f in on(mapped, Code.IDP_DISABLED_ACTIVE, accounts[leaver])} == set(
        accounts[leaver]
    )
    assert {f.learnupon_user_id for f in on(mapped, Code.IDP_DISABLED_ACTIVE, accounts[absent])} == set(
        accounts[absent]
    )
    assert on(mapped, Code.IDP_DISABLED_ACTIVE, accounts[seconded]) == []
    assert on(mapped, Code.NOT_IN_IDP, accounts[seconded] + accounts[absent]) == []
