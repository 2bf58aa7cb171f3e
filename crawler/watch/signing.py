"""How a webhook alert proves it came from idgraph, and was not replayed.

The sender signs `timestamp + "." + body` with HMAC-SHA256 under the sink's secret and sends the timestamp
(Unix seconds) and the signature in headers; every delivery attempt signs afresh. A receiver recomputes
the signature over the raw body it received, compares in constant time, and refuses a timestamp more than
`REPLAY_WINDOW_SECONDS` away from its own clock — so a captured request cannot be sent again later. The
`Idempotency-Key` (the alert's id) lets it drop a retry of an alert it already took. The README shows the
same check in a few lines of standard-library Python.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Idgraph-Timestamp"
SIGNATURE_HEADER = "X-Idgraph-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"  # the signature header reads "v1=<hex>"; a new scheme gets a new prefix
REPLAY_WINDOW_SECONDS = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signed_headers(secret: bytes, alert_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers of one delivery attempt."""
    timestamp = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        IDEMPOTENCY_HEADER: alert_id,
        "Content-Type": "application/json",
    }


def verify(
    secret: bytes,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    window: float = REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a receiver checks: a well-formed timestamp inside the window and a matching signature."""
    if not timestamp or not signature_header or not timestamp.isdigit():
        return False
    moment = int(timestamp)
    if abs((time.time() if now is None else now) - moment) > window:
        return False
    return hmac.compare_digest(signature(secret, moment, body), signature_header.strip())
