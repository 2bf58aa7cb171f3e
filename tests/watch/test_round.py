"""One watch round over a crawled snapshot: verdicts as the crawl would give them, once each, with alerts."""

from __future__ import annotations

from pathlib import Path

import pytest
from watch_helpers import AFTER_CRAWL, CRAWL_START, Directory, Rig, change, watch_config

from crawler.feeds.events import Skipped
from crawler.store import INCREMENTAL
from crawler.watch import tables
from crawler.watch.sinks import DeliveryError
from graph import history
from graph.api import load_run
from graph.model import Code

PORTALS, IDPS = ["emea", "apac"], ["okta", "entra"]


def crawl(snapshot, *, alice: str = "active", started_at: str = CRAWL_START) -> int:
    """The crawl the watcher stands on (and, with alice disabled, the crawl that would come after)."""
    run = snapshot.run(portals=PORTALS, idps=IDPS, started_at=started_at)
    run.user("emea", 1, "Alice@acme.com").user("apac", 7, "alice@acme.com")
    run.user("emea", 2, "bob@acme.com").user("apac", 8, "robert@acme.com", user_type="admin")
    run.user("emea", 3, "carol@acme.com").user("emea", 4, "dave@acme.com")
    run.user("apac", 9, "erin@acme.com", enabled=False)
    run.identity("okta", "00ua", "alice@acme.com", status=alice)
    run.identity("okta", "00ub", "bob@acme.com", ("robert@acme.com", "alias"))
    run.identity("okta", "00uc", "carol@acme.com")
    run.identity("entra", "e-carol", "carol@acme.com")
    run.identity("okta", "00ud", "dave@acme.com", status="disabled")
    run.identity("okta", "00ue", "erin@acme.com")
    return run.finish()


def directory() -> Directory:
    d = Directory()
    for portal, user_id, email, fields in [
        ("emea", 1, "Alice@acme.com", {}), ("apac", 7, "alice@acme.com", {}), ("emea", 2, "bob@acme.com", {}),
        ("apac", 8, "robert@acme.com", {"user_type": "admin"}), ("emea", 3, "carol@acme.com", {}),
        ("emea", 4, "dave@acme.com", {}), ("apac", 9, "erin@acme.com", {"enabled": False}),
    ]:  # fmt: skip
        d.add(portal, user_id, email, **fields)
    return d


@pytest.fixture
def rig(tmp_path: Path, snapshot) -> Rig:
    crawl(snapshot)
    return Rig(tmp_path, snapshot.store, watch_config(tmp_path, PORTALS, IDPS), directory())


def crawl_ids(snapshot, run_id: int) -> set[str]:
    with load_run(snapshot.store, run_id) as graph:
        return {f.id for f in graph.findings().findings if f.code is Code.IDP_DISABLED_ACTIVE}


async def test_an_offboarded_person_raises_one_alert_per_enabled_account_with_the_crawls_finding_ids(
    rig: Rig, snapshot
) -> None:
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com"))
    async with rig:
        report = await rig.watcher.round()
    assert report.complete and len(report.opened) == 2
    assert sorted(rig.directory.calls) == [("apac", "alice@acme.com"), ("emea", "alice@acme.com")]
    alerts = rig.alerts()
    assert [a["type"] for a in alerts] == ["finding_opened", "finding_opened"]
    assert {(a["portal"], a["learnupon_user_id"]) for a in alerts} == {("emea", 1), ("apac", 7)}
    assert all(a["finding"] == "idp_disabled_active" and a["idp_status"] == "disabled" for a in alerts)
    watch = alerts[0]["evidence"]["watch"]
    assert watch["crawl_run"] == 1 and "crawl 1" in watch["basis"]
    assert watch["status_from"]["okta:00ua"].startswith("change feed")
    assert tables.load_cursor(rig.store, "idp:okta") == "1"

    # The crawl that comes next, with alice disabled, gives the very same finding ids.
    later = crawl(snapshot, alice="disabled", started_at="2026-06-03T00:00:00Z")
    assert {a["finding_id"] for a in alerts} <= crawl_ids(snapshot, later)
    assert {a["finding_id"] for a in alerts} == crawl_ids(snapshot, later) - crawl_ids(snapshot, 1)


async def test_a_replayed_page_changes_nothing_and_costs_no_lookup(rig: Rig) -> None:
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com"))
    async with rig:
        await rig.watcher.round()
        calls = len(rig.directory.calls)
        tables.save_cursor(rig.store, "idp:okta", "0")  # a crash before the cursor was saved
        rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com", key="another-uuid"))
        report = await rig.watcher.round()
    assert report.opened == [] and len(rig.directory.calls) == calls
    assert len(rig.alerts()) == 2


async def test_reenabled_in_the_idp_closes_the_findings_with_the_reason_and_a_new_offboarding_alerts_again(
    rig: Rig,
) -> None:
    later = AFTER_CRAWL.replace(hour=10)
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com"))
    async with rig:
        opened = (await rig.watcher.round()).opened
        rig.feeds["okta"].add(change("okta", "00ua", "active", "alice@acme.com", at=later))
        closed = (await rig.watcher.round()).closed
        rig.feeds["okta"].add(change("okta", "00ua", "disabled", at=later.replace(hour=11)))
        reopened = (await rig.watcher.round()).opened
    assert sorted(closed) == sorted(opened) == sorted(reopened)
    alerts = rig.alerts()
    assert [a["type"] for a in alerts] == ["finding_opened"] * 2 + ["finding_closed"] * 2 + [
        "finding_opened"
    ] * 2
    assert all("reports 00ua active again (user.lifecycle.activate" in a["reason"] for a in alerts[2:4])
    assert len({a["alert_id"] for a in alerts}) == 6  # each opening is its own alert
    assert {f.state for f in tables.watch_findings(rig.store)} == {"open"}


async def test_a_person_still_active_in_another_idp_is_not_disabled_in_all_of_them(rig: Rig) -> None:
    rig.feeds["okta"].add(change("okta", "00uc", "disabled", "carol@acme.com"))
    async with rig:
        first = await rig.watcher.round()
        assert first.opened == [] and first.checked == 1 and rig.alerts() == []
        rig.feeds["entra"].add(change("entra", "e-carol", "disabled", "carol@acme.com"))
        second = await rig.watcher.round()
    assert len(second.opened) == 1
    [alert] = rig.alerts()
    assert alert["idp"] == "entra;okta" and alert["email"] == "carol@acme.com"
    assert alert["evidence"]["watch"]["status_from"]["okta:00uc"].startswith("change feed (watch run")


async def test_every_address_of_the_person_is_looked_up_in_every_portal(rig: Rig) -> None:
    rig.feeds["okta"].add(change("okta", "00ub", "disabled", "bob@acme.com"))
    async with rig:
        report = await rig.watcher.round()
    assert len(rig.directory.calls) == 4  # 2 addresses x 2 portals
    assert {(a["portal"], a["learnupon_user_id"], a["severity"]) for a in rig.alerts()} == {
        ("emea", 2, "high"),
        ("apac", 8, "critical"),  # an admin
    }
    assert report.requests["emea"] == report.requests["apac"] == 2


async def test_a_portal_whose_search_fails_is_owed_and_retried_never_read_as_no_account(rig: Rig) -> None:
    rig.directory.failing.add("apac")
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com"))
    async with rig:
        first = await rig.watcher.round()
        assert not first.complete and first.owed == [
            "apac alice@acme.com: apac: GET /users/search answered 500"
        ]
        assert [a["portal"] for a in rig.alerts()] == ["emea"]
        coverage = {c.source: c for c in rig.store.coverage(first.run_id)}
        assert not coverage["apac"].complete and coverage["emea"].complete
        assert rig.store.run(first.run_id).status == "incomplete"
        again = await rig.watcher.round()  # still failing: still owed, nothing concluded
        assert again.owed and again.opened == []
        rig.directory.failing.clear()
        recovered = await rig.watcher.round()
    assert recovered.complete and len(recovered.opened) == 1
    assert sorted(a["portal"] for a in rig.alerts()) == ["apac", "emea"]
    assert tables.owed_lookups(rig.store) == []


async def test_an_incremental_run_records_facts_and_never_resolves_what_it_did_not_read(
    rig: Rig, snapshot
) -> None:
    with load_run(snapshot.store, 1) as graph:  # dave: disabled in the crawl, his finding recorded
        history.record(snapshot.store, graph.findings(), graph.settings)
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com"))
    async with rig:
        report = await rig.watcher.round()
    run = rig.store.run(report.run_id)
    assert run.kind == INCREMENTAL and rig.store.run().id == 1  # the newest run is still the crawl
    assert rig.store.count("lu_users", run.id) == 2 and rig.store.count("idp_identities", run.id) == 1
    changes = history.diff(rig.store, run.id, 1)
    assert [e.email for e in changes.not_rechecked] == ["dave@acme.com"] and changes.resolved == []
    assert sorted(e.portal for e in changes.new) == ["apac", "emea"]
    later = crawl(snapshot, alice="disabled", started_at="2026-06-03T00:00:00Z")
    with load_run(snapshot.store, later) as graph:
        history.record(snapshot.store, graph.findings(), graph.settings)
    assert history.diff(rig.store, later).previous_run_id == 1  # a crawl is compared with a crawl


async def test_an_event_older_than_the_crawl_is_not_news(rig: Rig) -> None:
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", at=AFTER_CRAWL.replace(month=5)))
    async with rig:
        report = await rig.watcher.round()
    assert report.checked == 0 and rig.directory.calls == [] and report.run_id is None


async def test_a_baseline_seeds_unknown_identities_and_judges_known_ones_that_changed(rig: Rig) -> None:
    rig.feeds["okta"].add(
        change("okta", "00unew", "disabled", "new@acme.com"),  # never seen: only recorded
        change("okta", "00ua", "disabled", "alice@acme.com"),  # the crawl read it active: a change
        baseline=True,
    )
    async with rig:
        report = await rig.watcher.round()
    assert report.checked == 1 and len(report.opened) == 2
    assert tables.asserted_status(rig.store, "okta", "00unew") is not None


async def test_without_a_crawl_no_verdict_is_given_and_the_round_says_why(tmp_path: Path, snapshot) -> None:
    config = watch_config(tmp_path, PORTALS, IDPS)
    rig = Rig(tmp_path, snapshot.store, config, directory())
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com"))
    async with rig:
        report = await rig.watcher.round()
    assert report.opened == [] and not report.complete
    assert any("run `idgraph crawl` first" in w for w in report.withheld)
    assert rig.alerts() == []


class DownSink:
    """A sink of our own that is down until told otherwise (the `Sink` interface, not an HTTP mock)."""

    name = "pager"

    def __init__(self) -> None:
        self.down, self.taken = True, []

    async def deliver(self, alert) -> None:
        if self.down:
            raise DeliveryError("pager: unavailable")
        self.taken.append(alert.alert_id)

    async def close(self) -> None:
        return None


async def test_the_cursor_waits_until_every_sink_took_every_alert(rig: Rig, monkeypatch) -> None:
    pager = DownSink()
    rig.extra_sinks.append(pager)
    monkeypatch.setattr("crawler.watch.outbox.backoff_seconds", lambda attempts: 0.0)
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com"))
    async with rig:
        first = await rig.watcher.round()
        assert first.pending_alerts == {"siem": 0, "pager": 2} and not first.complete
        assert tables.load_cursor(rig.store, "idp:okta") is None  # the page will be read again
        replay = await rig.watcher.round()  # read again: nothing new is judged or alerted
        assert replay.opened == [] and len(rig.alerts()) == 2
        pager.down = False
        last = await rig.watcher.round()
    assert last.complete and len(pager.taken) == 2
    assert tables.load_cursor(rig.store, "idp:okta") == "1"


async def test_a_lookup_owed_before_a_newer_crawl_is_settled_by_it(rig: Rig, snapshot) -> None:
    rig.directory.failing.add("apac")
    rig.feeds["okta"].add(change("okta", "00ua", "disabled", "alice@acme.com"))
    async with rig:
        assert (await rig.watcher.round()).owed
        crawl(snapshot, alice="disabled", started_at="2026-06-03T00:00:00Z")  # it read apac's alice itself
        calls = len(rig.directory.calls)
        report = await rig.watcher.round()
    assert report.complete and len(rig.directory.calls) == calls
    assert tables.owed_lookups(rig.store) == []


async def test_an_identity_without_any_known_address_is_reported_not_silently_dropped(rig: Rig) -> None:
    rig.feeds["okta"].add(change("okta", "00unknown", "disabled"))
    async with rig:
        report = await rig.watcher.round()
    assert not report.complete and rig.directory.calls == []
    assert ["no address is known" in w for w in report.withheld] == [True]


async def test_a_feed_that_names_people_by_email_is_matched_to_the_crawls_identity(rig: Rig) -> None:
    """Google's reports name the user by email, the crawl by Google's id: the two are one identity."""
    rig.feeds["okta"].add(change("okta", "00uc", "disabled", "carol@acme.com"))
    rig.feeds["entra"].add(change("entra", "carol@acme.com", "disabled", "Carol@acme.com"))
    async with rig:
        report = await rig.watcher.round()
    assert len(report.opened) == 1 and report.withheld == []  # not a collision of two "entra" identities
    [alert] = rig.alerts()
    assert alert["evidence"]["watch"]["status_from"]["entra:e-carol"].startswith("change feed")
    assert tables.asserted_status(rig.store, "entra", "e-carol") is not None


async def test_a_record_the_feed_could_not_read_is_quarantined_never_read_as_harmless(rig: Rig) -> None:
    odd = Skipped("no target of type User", {"uuid": "e1", "target": None}, ("alice@acme.com",), "uuid e1")
    rig.feeds["okta"].add(skipped=(odd,))
    async with rig:
        report = await rig.watcher.round()
    assert not report.complete and report.quarantined == 1 and rig.directory.calls == []
    [row] = rig.store.quarantined(report.run_id)
    assert (row["source"], row["reason"], row["addresses"], row["label"]) == (
        "okta",
        "no target of type User",
        ["alice@acme.com"],
        "uuid e1",
    )
