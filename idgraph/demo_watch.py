"""`idgraph demo --watch`: after the demo's crawl, someone is offboarded in the simulated Okta and the alert
arrives — through the real System Log feed, `/users/search` lookups, the outbox and a signed webhook, all
on loopback. Alerts also land in `alerts.jsonl` beside the demo's report.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from crawler.config import Config, EntraConfig, JsonLinesAlert, OktaConfig, WebhookAlert
from crawler.idp.fakes import serve
from crawler.idp.fakes.directory import directory_from_people
from crawler.idp.fakes.entra import EntraFake
from crawler.idp.fakes.okta import OktaFake, okta_users_from_people
from crawler.orchestrator import crawl
from crawler.simulator.app import SimulatedPortal
from crawler.simulator.server import RunningSimulator, make_portals, run_simulator
from crawler.snapshot_reader import SnapshotReader
from crawler.store import SnapshotStore
from crawler.terminal import plain
from crawler.watch import tables
from crawler.watch.receiver import WebhookReceiver
from graph.resolve import load_resolution
from idgraph.demo import DEMO_OKTA_TOKEN, DEMO_WINDOW_SECONDS, demo_config
from idgraph.watch import watch


@dataclass
class SimulatedEstate:
    """Simulated portals and a fake Okta on loopback, crawled once into `db`: what the watcher stands on."""

    sims: list[SimulatedPortal]
    sim: RunningSimulator
    okta: OktaFake
    config: Config
    env: dict[str, str]  # the synthetic credentials, by the env var names the config uses
    db: Path
    run_id: int
    entra: EntraFake | None = None  # a second IdP of the same people, when asked for

    def toml(self, alerts: str = "") -> str:
        """The config as a TOML file (for `idgraph watch` in a subprocess), with `alerts` tables appended."""
        lines = ['[review]\nmanaged_domains = ["acme.com", "acme.co.uk"]\n']
        for p in self.config.portals:
            lines.append(
                f'[[portals]]\nname = "{p.name}"\nbase_url = "{p.base_url}"\n'
                f'username_env = "{p.username_env}"\npassword_env = "{p.password_env}"\n'
                f"requests_per_minute = {p.requests_per_minute}\n"
                f"rate_window_seconds = {p.rate_window_seconds}\n"
            )
        for i in self.config.idps:
            assert isinstance(i, OktaConfig)
            lines.append(
                f'[[idps]]\nname = "{i.name}"\ntype = "okta"\nbase_url = "{i.base_url}"\n'
                f'token_env = "{i.token_env}"\n'
            )
        return "\n".join(lines) + "\n" + alerts

    def addresses(self, okta_id: str) -> set[str]:
        """The addresses the crawl read for this Okta user, casefolded."""
        with SnapshotReader.open(self.db) as reader:
            _, rows = reader.identities_of(self.run_id, [(self.config.idps[0].name, okta_id)])
        return {row[2].casefold() for row in rows}

    def enabled_accounts(self, okta_id: str) -> dict[str, list[int]]:
        """portal -> ids of the enabled accounts holding any address the crawl read for this Okta user, as
        the simulator has them now (the ground truth a watcher's alerts are checked against)."""
        addresses = self.addresses(okta_id)
        out: dict[str, list[int]] = {}
        for portal in self.sims:
            users, index = portal.data.users, portal.data.index.users_by_email
            ids = sorted({u for a in addresses for u in index.get(a, []) if users[u]["enabled"]})
            if ids:
                out[portal.spec.name] = ids
        return out

    def processed(self, okta_ids: Sequence[str]) -> bool:
        """Whether a watcher has recorded every one of these people disabled, owes no lookup and has
        delivered every alert: what "done" means for a test or a benchmark."""
        with SnapshotStore(self.db) as store:
            done = all(
                (status := tables.asserted_status(store, self.config.idps[0].name, i)) is not None
                and status.status == "disabled"
                for i in okta_ids
            )
            return (
                done
                and not tables.owed_lookups(store)
                and all(r["delivered_at"] for r in tables.outbox(store))
            )


@asynccontextmanager
async def simulated_estate(
    db: Path,
    portals: Sequence[str],
    users: int,
    *,
    seed: int = 7,
    window: float = DEMO_WINDOW_SECONDS,
    entra: bool = False,
    **okta_options: Any,
) -> AsyncIterator[SimulatedEstate]:
    """Serve `portals` and a fake Okta of the same people (and, with `entra`, a fake Entra tenant of them
    too), crawl them once into `db`, and hand them over."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sims = make_portals(list(portals), users=users, seed=seed, reference_time=today)
    people = sims[0].population or []
    okta = OktaFake(okta_users_from_people(people), token=DEMO_OKTA_TOKEN, **okta_options)
    tenant = EntraFake(directory_from_people(people), client_secret=DEMO_ENTRA_SECRET) if entra else None
    served = [await serve(okta.app())] + ([await serve(tenant.app())] if tenant else [])
    try:
        async with run_simulator(sims, window_seconds=window) as sim:
            config, env = demo_config(sim, served[0].url)
            if tenant is not None:
                env["ENTRA_SECRET"] = DEMO_ENTRA_SECRET
                idp = EntraConfig(
                    name="entra", type="entra", tenant_id=tenant.tenant_id, client_id=tenant.client_id,
                    client_secret_env="ENTRA_SECRET", login_url=served[1].url, graph_url=served[1].url,
                    client_secret=SecretStr(DEMO_ENTRA_SECRET),
                )  # fmt: skip
                config = config.model_copy(update={"idps": [*config.idps, idp]})
            with SnapshotStore(db) as store:
                result = await crawl(config, store)
            yield SimulatedEstate(sims, sim, okta, config, env, db, result.run_id, tenant)
    finally:
        for fake in served:
            await fake.close()


DEMO_ENTRA_SECRET = "demo-entra-secret-not-a-secret"


def offboarding_candidates(db: Path, run_id: int, okta: str) -> list[tuple[str, str, int]]:
    """(Okta user id, address, enabled accounts) of every person whose only identity is an active Okta
    one and who has an enabled account: most accounts first. The demo offboards the first."""
    with SnapshotReader.open(db) as reader:
        resolution = load_resolution(reader, run_id)
    found = []
    for person in resolution.persons.values():
        identities = person.identities
        if len(identities) != 1 or identities[0].source != okta or identities[0].status != "active":
            continue
        enabled = sum(1 for a in person.accounts if a.enabled)
        if enabled:
            found.append((identities[0].idp_id, person.key, enabled))
    return sorted(found, key=lambda c: (-c[2], c[1]))


async def watch_demo(
    config: Config, db: Path, run_id: int, okta: OktaFake, out: Path, console: Console, quiet: bool
) -> int:
    """Offboard one person in the fake Okta and show the alerts arriving; the exit code."""
    secret = secrets.token_hex(16)
    receiver = WebhookReceiver(secret.encode())
    served = await serve(receiver.app())
    try:
        alerts = [
            JsonLinesAlert(name="siem", type="jsonl", path=str(out / "alerts.jsonl")),
            WebhookAlert(
                name="webhook", type="webhook", url=f"{served.url}/alerts", secret_env="DEMO_WEBHOOK_SECRET",
                secret=SecretStr(secret),
            ),
        ]  # fmt: skip
        config = config.model_copy(update={"alerts": alerts})
        okta_name = config.idps[0].name
        candidates = offboarding_candidates(db, run_id, okta_name)
        if not candidates:
            console.print("watch demo: nobody to offboard (no active Okta person with an enabled account)")
            return 3
        okta_id, address, accounts = candidates[0]
        # The first round starts the System Log feed (its baseline); the second sees the offboarding.
        await watch(config, db, interval=1, once=True, summary=False)
        okta.deactivate(okta_id)
        offboarded = time.monotonic()
        if not quiet:
            console.print(
                f"\n[bold]watch:[/] {plain(address)} deactivated in the simulated Okta "
                f"({accounts} enabled LearnUpon accounts); running one `idgraph watch --once` round…",
                highlight=False,
            )
        code = await watch(config, db, interval=1, once=True, summary=not quiet)
        seconds = time.monotonic() - offboarded
    finally:
        await served.close()
    if not quiet:
        table = Table(
            title=f"alerts at the webhook, signatures verified ({seconds:.2f} s after the offboarding)"
        )
        for column in ("type", "finding", "severity", "email", "portal", "user id"):
            table.add_column(column)
        for alert in receiver.alerts.values():
            table.add_row(
                *(plain(alert.get(k) or "") for k in ("type", "finding", "severity", "email", "portal")),
                plain(alert.get("learnupon_user_id")),
            )
        console.print(table)
        console.print(f"alerts also in {out / 'alerts.jsonl'}", highlight=False)
    return code if receiver.alerts and not receiver.refused else 3
