"""Where alerts go: JSON lines (a file or stdout), a signed webhook, a Slack-compatible incoming webhook.

A sink delivers one outbox alert or raises `DeliveryError`; the outbox (`crawler.watch.outbox`) retries it
later and marks it delivered only once a sink has said so, so every alert arrives at least once. Each sink
also drops what it already took, by `alert_id`: the file sink reads back the ids it wrote (a restart after
a kill between writing a line and recording it never writes the line twice), and the webhook sends the id
as its `Idempotency-Key`. Slack has no such key: a delivery whose answer was lost may show twice there.

The webhook and Slack sinks send through `SourceHttp` (no redirect followed, bounded body, retries with
jitter) with a session of their own, like any other source.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

import aiohttp

from crawler.config import AlertConfig, JsonLinesAlert, SlackAlert, WebhookAlert
from crawler.errors import SourceError
from crawler.http import SourceHttp, make_session
from crawler.private import FILE_MODE, make_private_dirs, restrict_file
from crawler.ratelimit import RateController
from crawler.terminal import visible
from crawler.watch.signing import signed_headers
from crawler.watch.tables import OutboxAlert

# A sink is not a shared API with an unknown limit: no slow start, just a ceiling (Slack documents about one
# message a second per incoming webhook, with short bursts allowed).
WEBHOOK_REQUESTS_PER_MINUTE = 600
SLACK_REQUESTS_PER_MINUTE = 60
SINK_ATTEMPTS = 3  # within one delivery; the outbox retries across rounds with a longer back-off
SINK_BACKOFF_CAP_SECONDS = 2.0


class DeliveryError(Exception):
    """A sink did not take the alert; the message is ours (no URL, no secret)."""


class Sink(Protocol):
    name: str

    async def deliver(self, alert: OutboxAlert) -> None: ...

    async def close(self) -> None: ...


class JsonLinesSink:
    """Appends each alert's JSON as one line, fsynced, to a file created 0o600 — or writes it to stdout.

    A file is read back once, on first use: the ids it holds are never written again, and a torn last line
    (a kill in the middle of a write) is cut off, so the file stays one JSON object per line.
    """

    def __init__(self, name: str, path: Path | None, stream: TextIO | None = None) -> None:
        self.name = name
        self.path = path
        self._stream = stream
        self._written: set[str] | None = None

    def _already_written(self) -> set[str]:
        if self._written is not None:
            return self._written
        written: set[str] = set()
        if self.path is not None and self.path.exists():
            restrict_file(self.path)
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data):  # a torn last line: not an alert anyone could read
                with open(self.path, "r+b") as handle:
                    handle.truncate(end)
                    os.fsync(handle.fileno())
            for line in data[:end].splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    written.add(str(json.loads(line)["alert_id"]))
        self._written = written
        return written

    async def deliver(self, alert: OutboxAlert) -> None:
        line = json.dumps(json.loads(alert.payload), ensure_ascii=False, separators=(",", ":")) + "\n"
        if self.path is None:
            stream = self._stream or sys.stdout
            try:
                stream.write(line)
                stream.flush()
            except OSError as exc:
                raise DeliveryError(f"{self.name}: cannot write to stdout: {exc.strerror}") from None
            return
        try:
            if alert.alert_id in self._already_written():
                return
            make_private_dirs(self.path.parent)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(self.path, flags, FILE_MODE)
            try:
                payload = memoryview(line.encode("utf-8"))
                while payload:
                    payload = payload[os.write(fd, payload) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._written = None  # read the file again next time: we do not know what landed
            raise DeliveryError(f"{self.name}: cannot append to {self.path}: {exc.strerror}") from None
        self._already_written().add(alert.alert_id)

    async def close(self) -> None:
        return None


class WebhookSink:
    """POSTs the alert's JSON bytes, signed (see `crawler.watch.signing`), with the alert id as the
    idempotency key. Any 2xx is a delivery; anything else is retried later."""

    def __init__(self, name: str, url: str, secret: bytes, http: SourceHttp) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self.http = http

    async def deliver(self, alert: OutboxAlert) -> None:
        body = alert.payload.encode("utf-8")
        await _post(self.http, self.url, body, lambda: signed_headers(self._secret, alert.alert_id, body))

    async def close(self) -> None:
        await self.http.close()


class SlackSink:
    """A short message for people, in Slack's incoming-webhook format (`{"text": …}`, mrkdwn)."""

    def __init__(self, name: str, url: str, http: SourceHttp) -> None:
        self.name = name
        self._url = url
        self.http = http

    async def deliver(self, alert: OutboxAlert) -> None:
        body = json.dumps({"text": slack_text(json.loads(alert.payload))}).encode("utf-8")
        await _post(self.http, self._url, body, lambda: {"Content-Type": "application/json"})

    async def close(self) -> None:
        await self.http.close()


async def _post(http: SourceHttp, url: str, body: bytes, headers: Any) -> None:
    try:
        await http.request("POST", url, data=body, headers=headers, purpose="alert", decode=_ignore_body)
    except SourceError as exc:
        raise DeliveryError(str(exc)) from None


def _ignore_body(raw: bytes) -> None:
    """A receiver's answer is not ours to read (Slack answers `ok` as plain text)."""
    return None


def slack_escape(text: object) -> str:
    """Data for Slack mrkdwn: `&`, `<`, `>` escaped (no link or @channel can be forged), controls shown;
    a missing value is `?`."""
    return (
        visible("?" if text is None else text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    )


def slack_text(alert: Mapping[str, Any]) -> str:
    kind = alert.get("type")
    who = slack_escape(alert.get("email") or alert.get("person") or "?")
    where = (
        f"portal `{slack_escape(alert.get('portal'))}` (user {slack_escape(alert.get('learnupon_user_id'))})"
    )
    fid = slack_escape(alert.get("finding_id") or alert.get("alert_id"))
    if kind == "finding_opened":
        event = alert.get("idp_event") or {}
        code, severity = slack_escape(alert.get("finding")), slack_escape(alert.get("severity"))
        return (
            f":rotating_light: *{code}* ({severity}): "
            f"{who} is still enabled in LearnUpon {where}, but disabled in "
            f"{slack_escape(event.get('source') or alert.get('idp'))} ({slack_escape(event.get('raw'))}). "
            f"Finding {fid}"
        )
    if kind == "finding_closed":
        return (
            f":white_check_mark: closed: {who} in {where}: {slack_escape(alert.get('reason'))}. Finding {fid}"
        )
    if kind == "account_reenabled":
        return (
            f":warning: *re-enabled*: {who} in {where} was disabled by idgraph remediation and is enabled "
            f"again (LearnUpon audit trail). Alert {fid}"
        )
    return f"idgraph alert {slack_escape(kind)} for {who}: {fid}"


def open_sinks(
    configs: Sequence[AlertConfig], connector: aiohttp.BaseConnector, stdout: TextIO | None = None
) -> list[Sink]:
    """A sink per `[[alerts]]` table; without any, JSON lines on stdout."""
    if not configs:
        return [JsonLinesSink("stdout", None, stdout)]
    sinks: list[Sink] = []
    for config in configs:
        if isinstance(config, JsonLinesAlert):
            sinks.append(
                JsonLinesSink(config.name, None if config.path == "-" else Path(config.path), stdout)
            )
        elif isinstance(config, WebhookAlert):
            assert config.secret is not None
            http = _sink_http(config.name, connector, config.timeout_seconds, WEBHOOK_REQUESTS_PER_MINUTE)
            sinks.append(
                WebhookSink(config.name, config.url, config.secret.get_secret_value().encode(), http)
            )
        elif isinstance(config, SlackAlert):
            assert config.url is not None
            http = _sink_http(config.name, connector, config.timeout_seconds, SLACK_REQUESTS_PER_MINUTE)
            sinks.append(SlackSink(config.name, config.url.get_secret_value(), http))
    return sinks


def _sink_http(name: str, connector: aiohttp.BaseConnector, timeout: float, per_minute: int) -> SourceHttp:
    session = make_session(connector, total_timeout=timeout, connect_timeout=min(timeout, 15.0))
    return SourceHttp(
        f"alerts {name}",
        session,
        RateController(ceiling=per_minute, initial_rate=per_minute / 60),
        max_concurrency=1,
        max_attempts=SINK_ATTEMPTS,
        backoff_cap_seconds=SINK_BACKOFF_CAP_SECONDS,
    )
