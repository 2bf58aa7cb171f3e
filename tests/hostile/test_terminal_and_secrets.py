"""Issue 14 items 6 and 7: server text is printed as plain text, and no secret reaches any output.

`idgraph crawl` runs in a subprocess against hostile portals; its stdout, stderr (text and JSON logs) and
the snapshot file are searched for markup effects, raw control sequences and every form of the secrets.
"""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import pytest
from aiohttp import web
from hostile_fakes import PORTAL_ENV, hostile, run_cli

from crawler.config import ConfigError, parse_config
from crawler.redact import redact

MARKUP_ATTACK = "[/bold] oops \u001b[31m [link=https://attacker.example]click[/link] \u009b2J"


def write_config(path: Path, url: str) -> None:
    path.write_text(
        f'[[portals]]\nname = "emea"\nbase_url = "{url}"\n'
        'username_env = "LU_USER"\npassword_env = "LU_PASS"\nrate_window_seconds = 1.0\n'
    )


@pytest.mark.parametrize("force_color", [False, True], ids=["plain", "force-color"])
async def test_a_401_body_full_of_markup_and_escapes_is_printed_as_plain_text(
    tmp_path: Path, force_color: bool
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"message": MARKUP_ATTACK}, status=401)

    async with hostile(handler) as portal:
        write_config(tmp_path / "c.toml", portal.url)
        env = {**PORTAL_ENV, **({"FORCE_COLOR": "1"} if force_color else {})}
        code, out, err = await run_cli(
            "crawl",
            "--config",
            str(tmp_path / "c.toml"),
            "--db",
            str(tmp_path / "s.db"),
            env=env,
            cwd=tmp_path,
        )
    assert code == 3, err  # finished, one source incomplete: not a crash
    assert "Traceback" not in err and "MarkupError" not in err
    text = out + err
    assert "[/bold] oops \\x1b[31m [link=https://attacker.example]click[/link] \\x9b2J" in text
    assert "\x1b]8;" not in text  # no terminal hyperlink
    assert "oops \x1b[31m" not in text and "\x9b" not in text  # no raw control sequence from the server


async def test_a_401_body_echoing_the_authorization_header_leaks_nowhere(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        echoed = request.headers.get("Authorization", "")
        decoded = base64.b64decode(echoed.removeprefix("Basic ")).decode()
        message = f"bad credentials: Authorization: {echoed} ({decoded})"
        return web.json_response({"message": message}, status=401)

    pair = f"{PORTAL_ENV['LU_USER']}:{PORTAL_ENV['LU_PASS']}"
    forms = [PORTAL_ENV["LU_PASS"], PORTAL_ENV["LU_USER"], base64.b64encode(pair.encode()).decode()]
    async with hostile(handler) as portal:
        write_config(tmp_path / "c.toml", portal.url)
        outputs = []
        for log_format in ("text", "json"):
            db = tmp_path / f"{log_format}.db"
            code, out, err = await run_cli(
                "crawl", "--config", str(tmp_path / "c.toml"), "--db", str(db), "--log-format", log_format,
                env=PORTAL_ENV, cwd=tmp_path,
            )  # fmt: skip
            assert code == 3, err
            outputs += [out, err]
    assert any("bad credentials" in o and "[redacted]" in o for o in outputs)
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("*.db*"))
    assert b"bad credentials" in db_bytes  # the API's message is kept…
    for secret in forms:  # …without any form of the credentials
        assert secret not in "".join(outputs)
        assert secret.encode() not in db_bytes


def test_a_token_pasted_as_an_env_var_name_is_not_echoed() -> None:
    token = "00aBcD3fGh1jKlMn0pQrStUvWxYz-okta"
    raw = {"idps": [{"name": "okta", "type": "okta", "base_url": "https://a.okta.com", "token_env": token}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env={})
    message = str(caught.value)
    assert "idps[0].token_env" in message and "NAME of an environment variable" in message
    assert token not in message and token[:8] not in message


@pytest.mark.parametrize("field", ["base_url", "login_url"])
def test_url_credentials_in_the_config_are_refused_without_being_echoed(field: str) -> None:
    url = "https://admin:hunter2-Pa55word@acme.example.com"
    if field == "base_url":
        raw = {"portals": [{"name": "e", "base_url": url, "username_env": "U", "password_env": "P"}]}
    else:
        raw = {
            "idps": [
                {
                    "name": "e",
                    "type": "entra",
                    "tenant_id": "t",
                    "client_id": "c",
                    "client_secret_env": "S",
                    field: url,
                }
            ]
        }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env={"U": "user-1", "P": "pass-1", "S": "secret-1"})
    assert field in str(caught.value)
    assert "hunter2" not in str(caught.value) and "admin:" not in str(caught.value)


def test_every_configured_secret_and_its_basic_form_is_redacted() -> None:
    parse_config(
        {
            "portals": [
                {"name": "p", "base_url": "https://a.example.com", "username_env": "U", "password_env": "P"}
            ],
            "idps": [{"name": "o", "type": "okta", "base_url": "https://o.example.com", "token_env": "T"}],
        },
        env={"U": "redact-user-42", "P": "redact-pass/+=42", "T": "redact-okta-token-42"},
    )
    basic = base64.b64encode(b"redact-user-42:redact-pass/+=42").decode()
    text = f"Basic {basic} | redact-pass%2F%2B%3D42 | SSWS redact-okta-token-42 | redact-user-42"
    cleaned = redact(text)
    for leaked in (basic, "redact-pass", "redact-okta-token-42", "redact-user-42"):
        assert leaked not in cleaned


def test_every_typer_app_hides_traceback_locals() -> None:
    """typer 0.15.0 (allowed by `typer>=0.15`) prints a crash's locals — the Neo4j password among them —
    unless the app says not to; every `typer.Typer(...)` outside the tests must say so."""
    from idgraph.cli import app
    from idgraph.neo4j_commands import export_app
    from idgraph.remediate import remediate_app

    root = Path(__file__).resolve().parents[2]
    calls = []
    for path in [*root.glob("crawler/**/*.py"), *root.glob("graph/**/*.py"), *root.glob("idgraph/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("typer.Typer", "Typer"):
                kwargs = {k.arg: k.value for k in node.keywords}
                hidden = kwargs.get("pretty_exceptions_show_locals")
                calls.append((path.name, isinstance(hidden, ast.Constant) and hidden.value is False))
    assert len(calls) >= 3 and all(ok for _, ok in calls), calls
    for typer_app in (app, remediate_app, export_app):
        assert typer_app.pretty_exceptions_show_locals is False


def test_a_json_log_line_redacts_a_secret_in_its_extra_fields_even_with_quotes_and_backslashes() -> None:
    """JSON escapes `"` and `\\` inside a value: a secret holding one no longer matches in the encoded
    line, so each value is redacted before encoding (a summary's `error`, a source's echoed body)."""
    import json
    import logging

    from crawler.logs import JsonFormatter
    from crawler.redact import REDACTOR

    secret = 'hunter"2-sec\\ret-77'
    REDACTOR.add(secret)
    record = logging.makeLogRecord(
        {"name": "idgraph", "levelno": logging.ERROR, "levelname": "ERROR", "msg": "failed",
         "error": f"server echoed {secret}", "sources": [{"error": f"body: {secret}"}]}
    )  # fmt: skip
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "hunter" not in line and "sec\\\\ret" not in line
    assert entry["error"] == "server echoed [redacted]"
    assert entry["sources"] == [{"error": "body: [redacted]"}]
