"""A small real estate for remediation tests: two simulated portals and a fake Okta on loopback, crawled
into a real snapshot. Tests then plan from that snapshot and apply against the same live servers.

Helpers are handed out through the `estate` fixture, since test modules here are not a package.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tenacity import wait_none

from crawler.config import Config, load_config
from crawler.idp.fakes import ServedFake, serve
from crawler.idp.fakes.directory import directory_from_people
from crawler.idp.fakes.okta import OktaFake
from crawler.orchestrator import crawl
from crawler.remediation.plan import Plan, write_plan
from crawler.simulator.app import SimulatedPortal
from crawler.simulator.server import RunningSimulator, make_portals, run_simulator
from crawler.store import SnapshotStore
from graph.model import Code
from graph.remediation_plan import plan_from_snapshot

WINDOW = 0.5  # the simulated portals' rate window, compressed from 60 s
PORTALS = ("emea", "amer")
OKTA_TOKEN = "okta-SECRET-token-5f1e0c9a7b"
KEY_ENV = "IDGRAPH_REMEDIATION_KEY"
REMEDIATION_KEY = "remediation-SECRET-key-2b7d41c9e8a3"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient faults are still retried, the same number of times, just without the jittered sleep."""
    monkeypatch.setattr("crawler.http.wait_random_exponential", lambda **_: wait_none())


@dataclass
class Estate:
    sim: RunningSimulator
    okta: OktaFake
    okta_url: str
    tmp: Path
    db: Path
    env: dict[str, str]
    run_id: int
    config_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config_path = self.write_config(self.tmp / "idgraph.toml")

    # --- config ---------------------------------------------------------------------------------
    def write_config(
        self,
        path: Path,
        *,
        idp: bool = True,
        extra: dict[str, str] | None = None,
        urls: dict[str, str] | None = None,
        remediation: str = f'key_env = "{KEY_ENV}"\n',
        crawl: str = "",
    ) -> Path:
        """The estate's config; `urls` points portals elsewhere (a proxy), `crawl` adds [crawl] keys."""
        blocks = ['[review]\nmanaged_domains = ["acme.com"]\n', f"[remediation]\n{remediation}"]
        if crawl:
            blocks.append(f"[crawl]\n{crawl}")
        for name in PORTALS:
            url = (urls or {}).get(name) or self.sim.base_url(name)
            blocks.append(
                f'[[portals]]\nname = "{name}"\nbase_url = "{url}"\n'
                f'username_env = "LU_{name.upper()}_USER"\npassword_env = "LU_{name.upper()}_KEY"\n'
                f"rate_window_seconds = {WINDOW}\n"
                + "".join(f"{k} = {v}\n" for k, v in (extra or {}).items())
            )
        if idp:
            blocks.append(
                f'[[idps]]\nname = "okta"\ntype = "okta"\nbase_url = "{self.okta_url}"\n'
                'token_env = "OKTA_TOKEN"\n'
            )
        path.write_text("\n".join(blocks))
        return path

    def config(self, path: Path | None = None, env: dict[str, str] | None = None) -> Config:
        return load_config(path or self.config_path, env=env or self.env)

    @property
    def secrets(self) -> list[str]:
        return [OKTA_TOKEN, REMEDIATION_KEY] + [p.spec.password for p in self.sim.portals]

    @property
    def key(self) -> bytes:
        return REMEDIATION_KEY.encode()

    # --- the simulated truth --------------------------------------------------------------------
    def portal(self, name: str) -> SimulatedPortal:
        return self.sim.portal(name)

    def enabled_states(self) -> dict[tuple[str, int], bool]:
        return {
            (p.name, uid): bool(user["enabled"])
            for p in self.sim.portals
            for uid, user in p.data.users.items()
        }

    def user(self, portal: str, user_id: int) -> dict[str, Any]:
        return self.portal(portal).data.users[user_id]

    def requests(self, method: str | None = None) -> list[tuple[str, str, str, dict[str, str], int]]:
        """(portal, method, path, query, status) of every request the portals saw since the crawl."""
        return [
            (p.name, m, path, q, status)
            for p in self.sim.portals
            for m, path, q, status in p.stats.log
            if method is None or m == method
        ]

    # --- plan and CLI ---------------------------------------------------------------------------
    def make_plan(
        self, out: Path | None = None, *, config: Path | None = None, **kwargs: Any
    ) -> tuple[Plan, Path]:
        plan = plan_from_snapshot(
            self.db, code=Code.IDP_DISABLED_ACTIVE, config=self.config(config), key=self.key, **kwargs
        )
        path = write_plan(plan, out or self.tmp / "plan.json")
        return plan, path

    async def cli(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """`python -m idgraph.remediate …` in a subprocess, stdin not a terminal."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "idgraph.remediate", *args,
            env={**os.environ, **(env if env is not None else self.env), "COLUMNS": "250"}, cwd=self.tmp,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def estate(tmp_path: Path) -> AsyncIterator[Estate]:
    # emea speaks the real API; amer the seed guide's dialect (bare objects, `is_active`, pages of 50).
    portals = make_portals(list(PORTALS), users=80, seed=11, per_portal={"amer": {"dialect": "seed"}})
    okta = OktaFake(directory_from_people(portals[0].population), token=OKTA_TOKEN)
    served: ServedFake = await serve(okta.app())
    env = {"OKTA_TOKEN": OKTA_TOKEN, KEY_ENV: REMEDIATION_KEY}
    for portal in portals:
        env[f"LU_{portal.name.upper()}_USER"] = portal.spec.username
        env[f"LU_{portal.name.upper()}_KEY"] = portal.spec.password
    try:
        async with run_simulator(portals, window_seconds=WINDOW) as sim:
            db = tmp_path / "snap.db"
            estate = Estate(sim, okta, served.url, tmp_path, db, env, run_id=0)
            with SnapshotStore(db) as store:
                result = await crawl(estate.config(), store)
            assert result.complete, [c.error for c in result.coverage]
            estate.run_id = result.run_id
            for portal in portals:
                portal.reset_stats()
            okta.exchanges.clear()  # from here on, only what remediation sent
            yield estate
    finally:
        await served.close()
