"""Google source against the fake Workspace: the signed-JWT token exchange, paging, quota back-off, real
403s — and no key material, assertion or token anywhere it could leak."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crawler.errors import AuthError, SourceError, TransientError
from crawler.idp import google
from crawler.idp.fakes import Faults
from crawler.idp.fakes.directory import FakePerson
from crawler.idp.fakes.google import GoogleFake, google_user
from crawler.idp.tokens import TokenRefused
from crawler.orchestrator import crawl
from crawler.records import IdentityStatus

CLIENT_EMAIL = "idgraph@acme-project.iam.gserviceaccount.com"
PEOPLE = [
    FakePerson(
        "active",
        "ana.silva@acme.com",
        aliases=("ana.s@acme.com",),
        last_login=datetime(2025, 4, 2, tzinfo=UTC),
    ),
    FakePerson("suspended", "ben.smith@acme.com", status="suspended"),
    FakePerson("archived", "chloe.garcia@acme.com", status="archived"),
    FakePerson("leaver", "david.muller@acme.com", status="disabled"),
    FakePerson("never", "elena.rossi@acme.com"),
    FakePerson("plain", "farid.haddad@acme.com"),
]


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def key_material(key: rsa.RSAPrivateKey) -> list[str]:
    """The PEM and each of its base64 lines: none of it may appear anywhere."""
    text = pem(key)
    return [text, *(line for line in text.splitlines() if "-----" not in line and len(line) > 20)]


def write_key(path: Path, key: rsa.RSAPrivateKey, uri: str, **changes: Any) -> Path:
    data = {
        "type": "service_account",
        "project_id": "acme-project",
        "private_key_id": "5f3c0a2b9d",
        "private_key": pem(key),
        "client_email": CLIENT_EMAIL,
        "client_id": "104200000000000000001",
        "token_uri": uri,
        **changes,
    }
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}), encoding="utf-8")
    return path


def google_id(key: str) -> str:
    return next(google_user(p)["id"] for p in PEOPLE if p.id == key)


async def start(
    aiohttp_server: Any,
    tools: Any,
    tmp_path: Path,
    fake: GoogleFake,
    signing_key: rsa.RSAPrivateKey,
    **key_changes,
) -> Any:
    server = await aiohttp_server(fake.app())
    url = tools.url_of(server)
    key_file = write_key(tmp_path / "key.json", signing_key, f"{url}/token", **key_changes)
    raw = {"name": "google", "type": "google", "key_file": str(key_file), "subject": "admin@acme.com"}
    return tools.idp({**raw, "base_url": url})


def listing(fake: GoogleFake) -> list[Any]:
    return [e for e in fake.exchanges if e.path == "/admin/directory/v1/users"]


def fast_backoff(http: Any) -> None:
    http.controller.backoff_base = 0.05


async def test_pages_statuses_and_aliases(aiohttp_server, tools, store, tmp_path, private_key):
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key(), page_size_cap=2)
    cfg = await start(aiohttp_server, tools, tmp_path, fake, private_key)

    outcome = await tools.crawl_one(google.open_source, cfg, store)

    assert outcome.error is None
    rows = outcome.by_id()
    assert {p.id: (rows[google_id(p.id)]["raw_status"], rows[google_id(p.id)]["status"]) for p in PEOPLE} == {
        "active": ("active", IdentityStatus.ACTIVE),
        "suspended": ("suspended", IdentityStatus.DISABLED),
        "archived": ("archived", IdentityStatus.DISABLED),
        "leaver": ("suspended", IdentityStatus.DISABLED),
        "never": ("active", IdentityStatus.ACTIVE),
        "plain": ("active", IdentityStatus.ACTIVE),
    }
    assert outcome.addresses(google_id("active")) == {
        "ana.silva@acme.com": (True, "email"),
        "ana.s@acme.com": (False, "alias"),
        "ana.silva@acme.com.test-google-a.com": (False, "alias"),
    }
    assert rows[google_id("active")]["last_login"] == "2025-04-02T00:00:00Z"
    assert rows[google_id("never")]["last_login"] is None  # 1970-01-01 means never
    calls = listing(fake)
    assert len(calls) == 3
    assert dict(calls[0].query) == {"customer": "my_customer", "maxResults": "500"}
    assert all(dict(c.query).get("pageToken") for c in calls[1:])
    assert outcome.collections()["users"]["done"] == 1
    assert outcome.http.stats.by_purpose == {"token": 1, "users": 3}
    [assertion] = fake.assertions
    header = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "=="))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "5f3c0a2b9d"}


async def test_quota_errors_back_off_and_retry(aiohttp_server, tools, store, tmp_path, private_key):
    quota = ["userRateLimitExceeded", "quotaExceeded", "rateLimitExceeded"]
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key(), quota_errors=quota)
    cfg = await start(aiohttp_server, tools, tmp_path, fake, private_key)

    outcome = await tools.crawl_one(google.open_source, cfg, store, prepare=fast_backoff)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)
    assert [e.status for e in listing(fake)] == [403, 403, 429, 200]
    assert outcome.http.stats.throttled == 3
    assert outcome.http.controller.pauses == 3


async def test_quota_that_never_recovers_fails_instead_of_spinning(
    aiohttp_server, tools, store, tmp_path, private_key
):
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key(), quota_errors=["quotaExceeded"] * 20)
    cfg = await start(aiohttp_server, tools, tmp_path, fake, private_key)

    def tiny(http: Any) -> None:
        http.controller.backoff_base, http.controller.backoff_cap, http.controller.max_backoffs = (
            0.01,
            0.02,
            3,
        )

    outcome = await tools.crawl_one(google.open_source, cfg, store, prepare=tiny)

    assert isinstance(outcome.error, SourceError) and "still throttled after 3 back-offs" in str(
        outcome.error
    )
    assert outcome.collections() == {}


async def test_a_real_403_fails_at_once_with_its_reason(aiohttp_server, tools, store, tmp_path, private_key):
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key(), forbidden=True)
    cfg = await start(aiohttp_server, tools, tmp_path, fake, private_key)

    outcome = await tools.crawl_one(google.open_source, cfg, store)

    assert isinstance(outcome.error, AuthError)
    message = str(outcome.error)
    assert "403" in message and "Not Authorized" in message and "[reason: forbidden]" in message
    assert "admin@acme.com is an admin" in message
    assert len(listing(fake)) == 1  # not retried


async def test_assertion_signed_by_another_key_is_refused(
    aiohttp_server, tools, store, tmp_path, private_key, debug_logs
):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key())
    cfg = await start(aiohttp_server, tools, tmp_path, fake, other)

    outcome = await tools.crawl_one(google.open_source, cfg, store)

    assert isinstance(outcome.error, TokenRefused)
    assert "invalid_grant" in str(outcome.error) and CLIENT_EMAIL in str(outcome.error)
    assert listing(fake) == []
    tools.assert_no_secrets(
        [*key_material(other), *fake.assertions], store=store, caplog=debug_logs, errors=[outcome.error]
    )


async def test_subject_without_delegation_is_refused(aiohttp_server, tools, store, tmp_path, private_key):
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key(), subject="someone-else@acme.com")
    cfg = await start(aiohttp_server, tools, tmp_path, fake, private_key)

    outcome = await tools.crawl_one(google.open_source, cfg, store)

    assert isinstance(outcome.error, AuthError)
    assert "401" in str(outcome.error) and "unauthorized_client" in str(outcome.error)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"private_key": None}, "has no private_key"),
        ({"token_uri": "http://oauth.example.com/token"}, "plain http is only allowed for loopback"),
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"},
            "cannot sign",
        ),
    ],
)
async def test_bad_key_files_fail_naming_the_problem(
    aiohttp_server, tools, store, tmp_path, private_key, changes, expected
):
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key())
    cfg = await start(aiohttp_server, tools, tmp_path, fake, private_key, **changes)

    outcome = await tools.crawl_one(google.open_source, cfg, store)

    assert isinstance(outcome.error, SourceError) and expected in str(outcome.error)
    assert "not a key" not in str(outcome.error)


async def test_failure_on_page_3_leaves_the_listing_incomplete(
    aiohttp_server, tools, store, tmp_path, private_key
):
    fake = GoogleFake(
        PEOPLE, public_key=private_key.public_key(), page_size_cap=2, faults=Faults(fail_from_page=3)
    )
    cfg = await start(aiohttp_server, tools, tmp_path, fake, private_key)

    outcome = await tools.crawl_one(google.open_source, cfg, store)

    assert isinstance(outcome.error, TransientError) and "answered 500" in str(outcome.error)
    users = outcome.collections()["users"]
    assert (users["done"], users["pages"], users["records"]) == (0, 2, 4)


async def test_orchestrator_missing_key_file_leaves_the_other_complete(
    aiohttp_server, tools, store, tmp_path, private_key, debug_logs
):
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key())
    server = await aiohttp_server(fake.app())
    url = tools.url_of(server)
    key_file = write_key(tmp_path / "key.json", private_key, f"{url}/token")
    common = {"type": "google", "subject": "admin@acme.com", "base_url": url}
    config = tools.config(
        {
            "idps": [
                {**common, "name": "workspace", "key_file": str(key_file)},
                {**common, "name": "workspace-eu", "key_file": str(tmp_path / "missing.json")},
            ]
        }
    )

    result = await crawl(config, store)

    coverage = {c.source: c for c in result.coverage}
    assert coverage["workspace"].complete and coverage["workspace"].records == len(PEOPLE)
    assert not coverage["workspace-eu"].complete
    assert "cannot read the key file" in (coverage["workspace-eu"].error or "")
    assert "missing.json" in (coverage["workspace-eu"].error or "")
    leaks = [*key_material(private_key), *fake.assertions, *fake.issued_tokens]
    tools.assert_no_secrets(leaks, store=store, caplog=debug_logs, errors=[coverage["workspace-eu"].error])
