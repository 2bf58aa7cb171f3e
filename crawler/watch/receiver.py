"""A webhook receiver as the README asks one to be written: it verifies each alert's signature and
timestamp, and takes each `Idempotency-Key` once. The demo, the benchmark and the tests run it on loopback;
`fail_next` makes it answer 500 a number of times, as a receiver that is down would.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crawler.watch.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class WebhookReceiver:
    secret: bytes
    fail_next: int = 0
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key -> alert, first copy
    received_at: dict[str, float] = field(default_factory=dict)  # idempotency key -> when first taken
    posts: int = 0  # every POST, whatever the answer
    repeats: int = 0  # verified POSTs of a key already taken (a redelivery the key absorbed)
    refused: int = 0  # bad signature or timestamp

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._take)
        return app

    async def _take(self, request: web.Request) -> web.Response:
        self.posts += 1
        body = await request.read()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "unavailable"}, status=500)
        headers = request.headers
        if not verify(self.secret, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), body):
            self.refused += 1
            return web.json_response({"error": "bad signature"}, status=401)
        key = headers.get(IDEMPOTENCY_HEADER, "")
        if key in self.alerts:
            self.repeats += 1
        else:
            self.alerts[key] = json.loads(body)
            self.received_at[key] = time.time()
        return web.json_response({"ok": True})
