"""The outbox: an alert is written in the same transaction as the finding it reports, and delivered later.

`enqueue` runs inside the caller's transaction and adds one pending delivery per configured sink. `deliver`
hands each sink its due alerts in the order they were written; a delivery is marked done only after the
sink took it, and a failed one waits out a back-off (doubling, capped, with jitter) before the next try,
while the sink's later alerts wait behind it. A kill anywhere leaves either a pending delivery (sent again
after a restart, and dropped by the sink's own de-duplication if it had landed) or a delivered one:
nothing is lost. The feed cursors move only once nothing is pending (`settled`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crawler.redact import redact
from crawler.store import SnapshotStore
from crawler.watch import tables
from crawler.watch.sinks import DeliveryError, Sink

log = logging.getLogger("idgraph.watch")

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0


def backoff_seconds(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """The wait after the `attempts`-th failure: 2, 4, 8 … s, capped at 5 min, minus up to a fifth."""
    wait = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return wait * (1 - 0.2 * rng())


@dataclass
class DeliveryReport:
    delivered: dict[str, int] = field(default_factory=dict)  # per sink, this pass
    failed: dict[str, str] = field(default_factory=dict)  # sink -> the last error of this pass


class Outbox:
    """Alerts waiting for, or done with, each configured sink."""

    def __init__(self, store: SnapshotStore, sinks: Sequence[Sink], clock: Callable[[], float] = time.time):
        self.store = store
        self.sinks = list(sinks)
        self._clock = clock

    @property
    def sink_names(self) -> list[str]:
        return [s.name for s in self.sinks]

    def enqueue(
        self,
        db: sqlite3.Connection,
        alert_id: str,
        kind: str,
        payload: Mapping[str, Any],
        *,
        finding_id: str | None,
        run_id: int | None,
    ) -> bool:
        """Write an alert (inside the caller's transaction); False when that alert id was written before."""
        body = json.dumps({"alert_id": alert_id, "type": kind, **payload}, ensure_ascii=False, sort_keys=True)
        return tables.enqueue(db, alert_id, finding_id, kind, body, run_id, self.sink_names)

    async def deliver(self) -> DeliveryReport:
        """Give every sink its due alerts, oldest first; stop a sink at its first failure."""
        report = DeliveryReport()
        await asyncio.gather(*(self._deliver_to(sink, report) for sink in self.sinks))
        return report

    async def _deliver_to(self, sink: Sink, report: DeliveryReport) -> None:
        while True:
            due = tables.due_deliveries(self.store, sink.name, self._clock())
            if not due:
                return
            for alert in due:
                try:
                    await sink.deliver(alert)
                except DeliveryError as exc:
                    error = redact(str(exc))
                    retry_at = self._clock() + backoff_seconds(alert.attempts + 1)
                    tables.mark_failed(self.store, alert.alert_id, sink.name, error, retry_at)
                    report.failed[sink.name] = error
                    log.warning(
                        "alert sink %s failed (attempt %d), retrying later: %s",
                        sink.name,
                        alert.attempts + 1,
                        error,
                        extra={"event": "alert_failed", "source": sink.name},
                    )
                    return
                tables.mark_delivered(self.store, alert.alert_id, sink.name)
                report.delivered[sink.name] = report.delivered.get(sink.name, 0) + 1

    def pending(self) -> dict[str, int]:
        """Per configured sink, the alerts not delivered yet."""
        return tables.undelivered(self.store, self.sink_names)

    def settled(self) -> bool:
        """Every alert written so far reached every sink: a feed cursor may move on."""
        return not any(self.pending().values())

    async def close(self) -> None:
        for sink in self.sinks:
            await sink.close()
