"""Okta source against the fake org: paging, both passes, statuses, pacing, faults — and every exchange
validated against Okta's published OpenAPI spec."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from crawler.errors import AuthError, SourceError, TransientError
from crawler.idp import okta
from crawler.idp.fakes import Faults, serve
from crawler.idp.fakes.directory import FakePerson
from crawler.idp.fakes.okta import OktaFake, okta_user, okta_users_from_people
from crawler.orchestrator import crawl
from crawler.records import IdentityStatus

PEOPLE = [
    FakePerson("active", "ana.silva@acme.com", "ana", "silva", status="active"),
    FakePerson("locked", "ben.smith@acme.com", "ben", "smith", status="locked_out"),
    FakePerson("expired", "chloe.garcia@acme.com", status="password_expired"),
    FakePerson("recovery", "david.muller@acme.com", status="recovery"),
    FakePerson("suspended", "elena.rossi@acme.com", status="suspended"),
    FakePerson("gone", "farid.kowalski@acme.com", status="deprovisioned"),
    FakePerson("staged", "grace.nguyen@acme.com", status="not_activated"),
    FakePerson("provisioned", "hiro.tanaka@acme.com", status="provisioned"),
    FakePerson(
        "renamed",
        "ines.okafor@acme.com",
        login="Ines.Johansson@acme.com",
        second_email="ines.private@gmail.example",
        last_login=datetime(2025, 5, 1, 8, tzinfo=UTC),
    ),
    FakePerson("plain", "jamal.dubois@acme.com"),
]
EXPECTED = {
    "active": ("ACTIVE", IdentityStatus.ACTIVE),
    "locked": ("LOCKED_OUT", IdentityStatus.ACTIVE),
    "expired": ("PASSWORD_EXPIRED", IdentityStatus.ACTIVE),
    "recovery": ("RECOVERY", IdentityStatus.ACTIVE),
    "suspended": ("SUSPENDED", IdentityStatus.DISABLED),
    "gone": ("DEPROVISIONED", IdentityStatus.DISABLED),
    "staged": ("STAGED", IdentityStatus.NOT_ACTIVATED),
    "provisioned": ("PROVISIONED", IdentityStatus.NOT_ACTIVATED),
    "renamed": ("ACTIVE", IdentityStatus.ACTIVE),
    "plain": ("ACTIVE", IdentityStatus.ACTIVE),
}


def okta_id(key: str) -> str:
    return next(okta_user(p)["id"] for p in PEOPLE if p.id == key)


async def start(aiohttp_server: Any, tools: Any, fake: OktaFake, token: str, scheme: str = "SSWS") -> Any:
    server = await aiohttp_server(fake.app())
    raw = {"name": "okta", "type": "okta", "base_url": tools.url_of(server), "token_env": "OKTA_TOKEN"}
    return tools.idp({**raw, "auth_scheme": scheme}, {"OKTA_TOKEN": token})


async def test_every_status_across_pages_and_deprovisioned_only_through_search(
    aiohttp_server, tools, store, secret
):
    token = secret("ssws")
    fake = OktaFake(PEOPLE, token=token, max_limit=3)
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert outcome.error is None
    rows = outcome.by_id()
    assert {key: (rows[okta_id(key)]["raw_status"], rows[okta_id(key)]["status"]) for key in EXPECTED} == {
        key: (raw, status.value) for key, (raw, status) in EXPECTED.items()
    }
    plain = [e for e in fake.exchanges if "search" not in dict(e.query)]
    search = [e for e in fake.exchanges if "search" in dict(e.query)]
    assert len(plain) == 3  # 9 listed users, 3 per page: the DEPROVISIONED one is hidden from the list
    assert all(okta_id("gone").encode() not in e.body for e in plain)
    assert [dict(e.query)["search"] for e in search] == ['status eq "DEPROVISIONED"']
    assert okta_id("gone").encode() in search[0].body
    collections = outcome.collections()
    assert collections["users"]["done"] == 1 and collections["users"]["pages"] == 3
    assert collections["deprovisioned"]["done"] == 1
    assert outcome.http.stats.by_purpose == {"users": 3, "deprovisioned": 1}
    assert tools.validate_okta_exchanges(fake.exchanges) == 4


async def test_next_link_is_followed_verbatim(aiohttp_server, tools, store, secret):
    token = secret("ssws")
    fake = OktaFake(PEOPLE, token=token, max_limit=4)
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert outcome.error is None
    plain = [e for e in fake.exchanges if "search" not in dict(e.query)]
    assert plain[0].query == (("limit", "200"),)
    for previous, current in itertools.pairwise(plain):
        next_links = [v for v in previous.response_header_values("Link") if 'rel="next"' in v]
        assert len(next_links) == 1
        link = next_links[0].split(">")[0].lstrip("<")
        assert link.endswith(f"{current.path}?" + "&".join(f"{k}={v}" for k, v in current.query))
    assert [v for v in plain[-1].response_header_values("Link") if 'rel="next"' in v] == []


async def test_addresses_use_email_and_login_but_never_second_email(aiohttp_server, tools, store, secret):
    token = secret("ssws")
    cfg = await start(aiohttp_server, tools, OktaFake(PEOPLE, token=token), token)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert outcome.addresses(okta_id("renamed")) == {
        "ines.okafor@acme.com": (True, "email"),
        "Ines.Johansson@acme.com": (False, "login"),
    }
    assert outcome.addresses(okta_id("plain")) == {"jamal.dubois@acme.com": (True, "email")}
    row = outcome.by_id()[okta_id("renamed")]
    assert row["last_login"] == "2025-05-01T08:00:00Z"
    assert row["status_changed_at"] == "2025-06-01T09:30:00Z"
    assert row["display_name"] == "Test Person"


async def test_bearer_scheme(aiohttp_server, tools, store, secret):
    token = secret("oauth")
    fake = OktaFake(PEOPLE, token=token, schemes=("Bearer",))
    cfg = await start(aiohttp_server, tools, fake, token, scheme="Bearer")

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)
    assert {e.header("Authorization") for e in fake.exchanges} == {f"Bearer {token}"}


async def test_429_then_success_waits_for_the_reset(aiohttp_server, tools, store, secret):
    token = secret("ssws")
    fake = OktaFake(PEOPLE, token=token, rate_window=1.0, faults=Faults(throttle_next=2))
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)
    assert outcome.http.stats.throttled == 2
    throttled = [e for e in fake.exchanges if e.status == 429]
    assert len(throttled) == 2 and all(b'"errorCode": "E0000047"' in e.body for e in throttled)
    tools.validate_okta_exchanges(fake.exchanges)


async def test_paces_from_rate_limit_headers_instead_of_hitting_429(aiohttp_server, tools, store, secret):
    token = secret("ssws")
    fake = OktaFake(PEOPLE, token=token, max_limit=2, rate_limit=4, rate_window=1.0)
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)
    assert outcome.http.stats.throttled == 0
    assert outcome.http.controller.pauses >= 2  # 6 requests against 4 per window, reserve 1
    assert all(e.status == 200 for e in fake.exchanges)


async def test_failure_on_page_3_leaves_the_listing_incomplete(aiohttp_server, tools, store, secret):
    token = secret("ssws")
    fake = OktaFake(PEOPLE, token=token, max_limit=2, faults=Faults(fail_from_page=3))
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert isinstance(outcome.error, TransientError)
    assert "answered 500" in str(outcome.error)
    collections = outcome.collections()
    assert collections["deprovisioned"]["done"] == 1
    assert collections["users"] == {**collections["users"], "done": 0, "pages": 2, "records": 4}
    assert outcome.http.stats.retries == 4  # page 3 was retried, then given up
    tools.validate_okta_exchanges(fake.exchanges)


async def test_wrong_token_fails_clearly_without_the_token(aiohttp_server, tools, store, secret, debug_logs):
    good, bad = secret("ssws"), secret("ssws")
    fake = OktaFake(PEOPLE, token=good)
    cfg = await start(aiohttp_server, tools, fake, bad)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert isinstance(outcome.error, AuthError)
    message = str(outcome.error)
    assert "401" in message and "Invalid token provided" in message and "$OKTA_TOKEN" in message
    assert fake.exchanges[0].status == 401 and b"E0000011" in fake.exchanges[0].body
    tools.validate_okta_exchanges(fake.exchanges)
    tools.assert_no_secrets([good, bad], store=store, caplog=debug_logs, errors=[outcome.error])


async def test_unknown_status_is_quarantined_not_guessed(aiohttp_server, tools, store, secret):
    token = secret("ssws")
    odd = FakePerson("odd", "kofi.osei@acme.com", overrides={"okta": {"status": "HIBERNATING"}})
    cfg = await start(aiohttp_server, tools, OktaFake([*PEOPLE, odd], token=token), token)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert outcome.error is None  # (the fake's record is off-spec on purpose, so no spec validation here)
    [quarantined] = store.quarantined(outcome.run_id)
    assert "unknown Okta status 'HIBERNATING'" in quarantined["reason"]
    assert "kofi.osei@acme.com" in quarantined["addresses"]  # still evidence that the person exists
    assert "kofi.osei@acme.com" in store.quarantined_addresses(outcome.run_id)
    assert outcome.ctx.progress.quarantined == 1
    assert len(outcome.rows()) == len(PEOPLE)


async def test_orchestrator_one_bad_org_leaves_the_other_complete(
    aiohttp_server, tools, store, secret, debug_logs
):
    good, other = secret("ssws"), secret("ssws")
    fake = OktaFake(PEOPLE, token=good)
    server = await aiohttp_server(fake.app())
    url = tools.url_of(server)
    config = tools.config(
        {
            "idps": [
                {"name": "okta-main", "type": "okta", "base_url": url, "token_env": "OKTA_MAIN"},
                {"name": "okta-old", "type": "okta", "base_url": url, "token_env": "OKTA_OLD"},
            ]
        },
        {"OKTA_MAIN": good, "OKTA_OLD": other},
    )

    result = await crawl(config, store)

    coverage = {c.source: c for c in result.coverage}
    assert coverage["okta-main"].complete and coverage["okta-main"].error is None
    assert coverage["okta-main"].records == len(PEOPLE)
    assert coverage["okta-main"].requests_by_purpose == {"users": 1, "deprovisioned": 1}
    assert not coverage["okta-old"].complete
    assert "Invalid token provided" in (coverage["okta-old"].error or "")
    assert store.count("idp_identities", result.run_id, "okta-main") == len(PEOPLE)
    tools.validate_okta_exchanges(fake.exchanges)
    for _ in ("with the WAL", "checkpointed"):
        tools.assert_no_secrets(
            [good, other], store=store, caplog=debug_logs, errors=[coverage["okta-old"].error]
        )
        store.close()


@dataclass
class SimPerson:
    key: int
    given_name: str
    family_name: str
    email: str
    aliases: tuple[str, ...]
    idp_status: str
    status_changed_at: datetime


def test_okta_users_from_people_for_the_demo():
    when = datetime(2025, 2, 28, tzinfo=UTC)
    people = [
        SimPerson(1, "ana", "silva", "ana.silva@acme.com", ("ana.s@acme.com",), "active", when),
        SimPerson(2, "ben", "smith", "ben.smith@acme.com", (), "disabled", when),
        SimPerson(3, "cy", "xu", "cy.xu@acme.com", (), "deprovisioned", when),
        SimPerson(4, "di", "ito", "di.ito@acme.com", (), "suspended", when),
        SimPerson(5, "ed", "kim", "ed.kim@acme.com", (), "locked_out", when),
        SimPerson(6, "fay", "roe", "fay.roe@acme.com", (), "not_activated", when),
        SimPerson(7, "gus", "lee", "gus.lee@acme.com", (), "absent", when),
    ]

    users = okta_users_from_people(people)

    assert [u["status"] for u in users] == [
        "ACTIVE",
        "DEPROVISIONED",
        "DEPROVISIONED",
        "SUSPENDED",
        "LOCKED_OUT",
        "STAGED",
    ]
    assert users[0]["profile"]["email"] == "ana.silva@acme.com"
    assert users[0]["profile"]["login"] == "ana.s@acme.com"
    assert users[0]["statusChanged"] == "2025-02-28T00:00:00.000Z"
    assert len({u["id"] for u in users}) == 6 and all(u["id"].startswith("00u") for u in users)
    assert okta_users_from_people(people) == users  # deterministic


async def test_demo_population_served_with_serve(tools, store, secret):
    when = datetime(2025, 1, 10, tzinfo=UTC)
    statuses = ["active", "disabled", "deprovisioned", "suspended", "locked_out", "not_activated", "absent"]
    people = [
        SimPerson(i, "p", f"n{i}", f"p{i}@acme.com", (f"old{i}@acme.com",) if i % 2 else (), s, when)
        for i, s in enumerate(statuses * 3)
    ]
    token = secret("ssws")
    fake = OktaFake(okta_users_from_people(people), token=token, max_limit=5)
    served = await serve(fake.app())
    try:
        cfg = tools.idp(
            {"name": "okta", "type": "okta", "base_url": served.url, "token_env": "T"}, {"T": token}
        )
        outcome = await tools.crawl_one(okta.open_source, cfg, store)
    finally:
        await served.close()

    assert outcome.error is None
    statuses_seen = sorted(r["status"] for r in outcome.rows())
    assert statuses_seen == sorted(["active"] * 6 + ["disabled"] * 9 + ["not_activated"] * 3)
    addresses = {r["address"] for r in outcome.rows("idp_addresses")}
    assert "p1@acme.com" in addresses and "old1@acme.com" in addresses  # the login alias
    assert not {"p6@acme.com", "p13@acme.com", "p20@acme.com"} & addresses  # absent from the IdP


async def test_next_link_found_whatever_the_header_order(aiohttp_server, tools, store, secret):
    token = secret("ssws")
    fake = OktaFake(PEOPLE, token=token, max_limit=3, next_link_first=True)
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(okta.open_source, cfg, store)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)


def test_link_header_parsing_and_foreign_links():
    joined = '<https://acme.okta.com/api/v1/users?limit=200>; rel="self", <https://acme.okta.com/api/v1/users?after=00u2&limit=200>; rel="next"'  # noqa: E501
    assert okta.next_link({"link": joined}) == "https://acme.okta.com/api/v1/users?after=00u2&limit=200"
    assert okta.next_link({"Link": '<https://acme.okta.com/api/v1/users?limit=200>; rel="self"'}) is None
    assert okta.next_link({}) is None
    with pytest.raises(SourceError, match="refusing to follow"):
        okta.same_origin_link(
            "https://evil.example/api/v1/users", "https://acme.okta.com/x", "https://acme.okta.com", "okta"
        )
