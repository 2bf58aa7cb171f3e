"""Alert sinks and the outbox: signed webhooks, a receiver that is down and comes back, JSON lines that are
never written twice, Slack text no name can forge a mention with."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from crawler.config import Config, parse_config
from crawler.idp.fakes import ServedFake, serve
from crawler.store import SnapshotStore
from crawler.watch import tables
from crawler.watch.outbox import BACKOFF_CAP_SECONDS, DeliveryReport, Outbox, backoff_seconds
from crawler.watch.receiver import WebhookReceiver
from crawler.watch.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signed_headers, verify
from crawler.watch.sinks import JsonLinesSink, open_sinks, slack_text
from crawler.watch.tables import OutboxAlert

SECRET = b"whsec-test-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


PORTAL = {"name": "p", "base_url": "https://p.example", "username_env": "U", "password_env": "P"}


def hook_config(url: str, secret: str) -> Config:
    alert = {"name": "hook", "type": "webhook", "url": url, "secret_env": "HOOK"}
    return parse_config({"portals": [PORTAL], "alerts": [alert]}, {"U": "u", "P": "p", "HOOK": secret})


def enqueue(store: SnapshotStore, outbox: Outbox, n: int) -> list[str]:
    ids = []
    with store.transaction() as db:
        for i in range(n):
            alert_id = f"f{i}-opened-1"
            payload = {"email": f"p{i}@acme.com", "finding_id": f"f{i}"}
            outbox.enqueue(db, alert_id, "finding_opened", payload, finding_id=f"f{i}", run_id=2)
            ids.append(alert_id)
    return ids


async def deliver_one(tmp_path: Path, config: Config, served: ServedFake) -> DeliveryReport:
    """One alert through the configured sinks, once; the server is closed afterwards."""
    connector = aiohttp.TCPConnector()
    with SnapshotStore(tmp_path / "s.db") as store:
        outbox = Outbox(store, open_sinks(config.alerts, connector))
        try:
            enqueue(store, outbox, 1)
            return await outbox.deliver()
        finally:
            await outbox.close()
            await connector.close()
            await served.close()


def test_the_signature_covers_timestamp_and_body_and_expires() -> None:
    body = b'{"alert_id":"a1"}'
    headers = signed_headers(SECRET, "a1", body, now=1_700_000_000)
    timestamp, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert sig == signature(SECRET, 1_700_000_000, body) and sig.startswith("v1=")
    assert verify(SECRET, timestamp, sig, body, now=1_700_000_100)
    assert not verify(SECRET, timestamp, sig, body + b" ", now=1_700_000_100)  # body changed
    assert not verify(b"another-secret", timestamp, sig, body, now=1_700_000_100)
    assert not verify(SECRET, timestamp, sig, body, now=1_700_000_000 + 301)  # replayed too late
    assert not verify(SECRET, "1700000001", sig, body, now=1_700_000_000)  # timestamp swapped
    assert not verify(SECRET, "-5", sig, body) and not verify(SECRET, None, sig, body)


def test_the_readme_snippet_verifies_what_idgraph_sends() -> None:
    """The verification code users copy from the README, run as written against a real signature."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = readme.split("<!-- webhook-verify -->", 2)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(snippet, namespace)  # the documented function, nothing else
    body = b'{"alert_id":"a1","type":"finding_opened"}'
    headers = signed_headers(SECRET, "a1", body)
    verify_alert = namespace["verify_alert"]
    assert callable(verify_alert)
    assert verify_alert(SECRET, headers, body) is True
    assert verify_alert(SECRET, headers, body.replace(b"a1", b"a2")) is False


async def test_a_webhook_that_fails_then_recovers_gets_each_alert_once_signed(tmp_path: Path) -> None:
    receiver = WebhookReceiver(SECRET, fail_next=4)  # one delivery tries 3 times: the first pass fails
    served = await serve(receiver.app())
    config = hook_config(f"{served.url}/idgraph", SECRET.decode())
    clock = Clock()
    connector = aiohttp.TCPConnector()
    with SnapshotStore(tmp_path / "s.db") as store:
        outbox = Outbox(store, open_sinks(config.alerts, connector), clock=clock)
        try:
            ids = enqueue(store, outbox, 2)
            first = await outbox.deliver()
            assert first.failed and not first.delivered and outbox.pending() == {"hook": 2}
            assert "answered 500" in first.failed["hook"]
            again = await outbox.deliver()  # still backing off: nothing is sent
            assert again.delivered == {} and receiver.posts == 3
            clock.now += BACKOFF_CAP_SECONDS
            second = await outbox.deliver()  # one more 500, then the receiver is back
            assert second.delivered == {"hook": 2} and outbox.settled()
        finally:
            await outbox.close()
            await connector.close()
            await served.close()
        rows = tables.outbox(store)
    assert sorted(receiver.alerts) == ids and receiver.repeats == receiver.refused == 0
    assert receiver.alerts["f0-opened-1"] == {"alert_id": "f0-opened-1", "email": "p0@acme.com",
                                              "finding_id": "f0", "type": "finding_opened"}  # fmt: skip
    assert all(r["delivered_at"] for r in rows) and rows[0]["attempts"] == 2


async def test_a_webhook_that_redirects_is_not_followed(tmp_path: Path) -> None:
    app = web.Application()

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://elsewhere.example/steal")

    app.router.add_post("/hook", moved)
    served = await serve(app)
    config = hook_config(f"{served.url}/hook", "s3cret-value-long-enough")
    report = await deliver_one(tmp_path, config, served)
    assert "redirects are not followed" in report.failed["hook"] and "s3cret" not in report.failed["hook"]


async def test_json_lines_are_written_once_even_after_a_kill_between_write_and_record(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    alert = OutboxAlert("a1", "f1", "finding_opened", json.dumps({"alert_id": "a1", "x": 1}))
    await JsonLinesSink("siem", path).deliver(alert)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "ab") as handle:  # killed in the middle of the next line
        handle.write(b'{"alert_id": "a2", "x"')
    restarted = JsonLinesSink("siem", path)
    await restarted.deliver(alert)  # the first one again: already there
    await restarted.deliver(OutboxAlert("a2", "f2", "finding_opened", json.dumps({"alert_id": "a2", "x": 2})))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"alert_id": "a1", "x": 1}, {"alert_id": "a2", "x": 2}]


async def test_stdout_is_the_sink_when_none_is_configured(tmp_path: Path) -> None:
    out = io.StringIO()
    [sink] = open_sinks([], aiohttp.TCPConnector(), stdout=out)
    await sink.deliver(OutboxAlert("a1", None, "finding_opened", '{"alert_id": "a1"}'))
    assert out.getvalue() == '{"alert_id":"a1"}\n'


def test_slack_text_escapes_what_a_name_could_forge() -> None:
    text = slack_text(
        {"type": "finding_opened", "finding": "idp_disabled_active", "severity": "high",
         "email": "<!channel> <https://evil.example|click>@acme.com", "portal": "emea\x1b[2J",
         "learnupon_user_id": 3, "finding_id": "abc", "idp_event": {"source": "okta", "raw": "deactivate"}}
    )  # fmt: skip
    assert "<!channel>" not in text and "<https://" not in text and "\x1b" not in text
    assert "&lt;!channel&gt;" in text and "\\x1b" in text


def test_backoff_doubles_and_is_capped() -> None:
    waits = [backoff_seconds(n, rng=lambda: 0.0) for n in range(1, 12)]
    assert waits[:3] == [2.0, 4.0, 8.0] and waits[-1] == BACKOFF_CAP_SECONDS
    assert backoff_seconds(3, rng=lambda: 1.0) == pytest.approx(8.0 * 0.8)


def test_slack_and_webhook_secrets_come_from_the_environment_and_are_checked() -> None:
    base = {
        "portals": [{"name": "p", "base_url": "https://p.example", "username_env": "U", "password_env": "P"}]
    }
    env = {"U": "u", "P": "p", "SLACK": "http://hooks.slack.example/T/B/secret"}
    with pytest.raises(ValueError) as plain_http:
        parse_config({**base, "alerts": [{"name": "s", "type": "slack", "url_env": "SLACK"}]}, env)
    assert "alerts[0].url_env" in str(plain_http.value) and "secret" not in str(plain_http.value)
    with pytest.raises(ValueError, match="secrets never go in the config file"):
        parse_config({**base, "alerts": [{"name": "w", "type": "webhook", "url": "https://x.example",
                                          "secret_env": "W", "secret": "inline"}]}, env)  # fmt: skip
    with pytest.raises(ValueError, match=r"alerts\[0\].url: plain http is only allowed for loopback"):
        parse_config({**base, "alerts": [{"name": "w", "type": "webhook", "url": "http://x.example",
                                          "secret_env": "U"}]}, env)  # fmt: skip
    with pytest.raises(ValueError, match="duplicate sink name"):
        parse_config(
            {**base, "alerts": [{"name": "a", "type": "jsonl"}, {"name": "a", "type": "jsonl"}]}, env
        )


async def test_slack_gets_a_text_message_and_its_plain_ok_answer_counts(tmp_path: Path) -> None:
    received: list[dict] = []

    async def incoming(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")  # what Slack's incoming webhooks answer

    app = web.Application()
    app.router.add_post("/services/T0/B0/x", incoming)
    served = await serve(app)
    env = {"U": "u", "P": "p", "SLACK_URL": f"{served.url}/services/T0/B0/x"}
    config = parse_config(
        {"portals": [PORTAL], "alerts": [{"name": "chat", "type": "slack", "url_env": "SLACK_URL"}]}, env
    )
    report = await deliver_one(tmp_path, config, served)
    assert report.delivered == {"chat": 1}
    [message] = received
    assert set(message) == {"text"} and message["text"].startswith(":rotating_light:")
    assert "p0@acme.com is still enabled in LearnUpon" in message["text"]
    assert message["text"].endswith("Finding f0")
