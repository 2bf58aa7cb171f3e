"""Issue 14 item 4: a redirect never carries a secret to another host, and never completes a source."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hostile_fakes import PORTAL_ENV, hostile, make_config, portal_entry, run_crawl


def redirect_to(target: str, status: int = 307):
    async def handler(request: web.Request) -> web.Response:
        # The Location carries userinfo and a query, which must never reach a message.
        location = target.replace("http://", "http://evil:pw@") + request.path_qs + "?sig=leak-me"
        return web.Response(status=status, headers={"Location": location})

    return handler


async def serve_users(request: web.Request) -> web.Response:
    """The attacker's origin answers like a happy API: users, groups and courses, one page each."""
    body = {"user": [{"id": 1, "email": "a@acme.com"}], "groups": [], "courses": [], "value": []}
    return web.json_response(body)


async def test_entra_token_endpoint_307_to_another_host_never_receives_the_client_secret(
    tmp_path: Path,
) -> None:
    secret = "entra-client-secret-8d1f0c7e"
    async with hostile(serve_users) as attacker, hostile(redirect_to(attacker.url)) as login:
        cfg = make_config(
            idps=[
                {
                    "name": "entra", "type": "entra", "tenant_id": "t", "client_id": "c",
                    "client_secret_env": "ENTRA_SECRET", "login_url": login.url, "graph_url": login.url,
                }
            ],
            env={"ENTRA_SECRET": secret},
        )  # fmt: skip
        result, store = await run_crawl(cfg, tmp_path)
    cov = result.coverage[0]
    assert not cov.complete
    assert "307 redirect" in (cov.error or "") and "not followed" in (cov.error or "")
    assert login.received(secret)  # sent where it belongs…
    assert attacker.requests == [] and not attacker.received(secret)  # …and nowhere else
    assert "leak-me" not in cov.error and "evil" not in cov.error
    store.close()


async def test_google_token_endpoint_307_never_receives_the_signed_assertion(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    async with hostile(serve_users) as attacker, hostile(redirect_to(attacker.url)) as token_host:
        key_file = tmp_path / "key.json"
        key_file.write_text(
            json.dumps(
                {"client_email": "sa@p.iam", "private_key": pem, "token_uri": f"{token_host.url}/token"}
            )
        )
        cfg = make_config(
            idps=[
                {
                    "name": "google", "type": "google", "key_file": str(key_file),
                    "subject": "admin@acme.com", "base_url": token_host.url,
                }
            ]
        )  # fmt: skip
        result, store = await run_crawl(cfg, tmp_path)
    cov = result.coverage[0]
    assert not cov.complete and "redirect" in (cov.error or "")
    assert token_host.received("assertion=")
    assert attacker.requests == []
    store.close()


async def test_learnupon_302_to_another_origin_is_not_followed_and_its_data_not_accepted(
    tmp_path: Path,
) -> None:
    async with hostile(serve_users) as attacker, hostile(redirect_to(attacker.url, 302)) as portal:
        result, store = await run_crawl(make_config(portals=[portal_entry(portal.url)]), tmp_path)
    cov = result.coverage[0]
    assert not cov.complete, "a redirect to another origin completed the portal"
    assert "302 redirect" in (cov.error or "")
    assert attacker.requests == []
    assert not any(attacker.received(v) for v in PORTAL_ENV.values())
    assert list(store.rows("lu_users", result.run_id, "emea")) == []
    store.close()
