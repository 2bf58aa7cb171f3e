"""Run the simulator on a real loopback socket: an async context manager for tests, a loop for the CLI.

`make_portals` builds the usual estate — several portals whose accounts come from one shared population,
so one person appears in several portals under different ids — with credentials derived from the seed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, encode_basic_auth, web

from .app import SimulatedPortal, build_app
from .dataset import PortalSpec, generate_portal
from .faults import FaultConfig
from .population import DEFAULT_REFERENCE_TIME, Person, generate_population


@dataclass
class RunningSimulator:
    """A started simulator: where it listens and the live portal objects behind it."""

    url: str  # http://127.0.0.1:PORT
    portals: list[SimulatedPortal]

    def portal(self, name: str) -> SimulatedPortal:
        for portal in self.portals:
            if portal.name == name:
                return portal
        raise KeyError(f"no simulated portal named {name!r}")

    def base_url(self, name: str) -> str:
        """The portal's base URL, to which a client appends `/api/v1/...`."""
        return f"{self.url}/{self.portal(name).name}"

    def session(self, name: str, **kwargs: Any) -> ClientSession:
        """A client session authenticated for one portal, rooted at its base URL (`get("api/v1/users")`)."""
        auth = encode_basic_auth(*self.portal(name).credentials)
        headers = {"Authorization": auth, **kwargs.pop("headers", {})}
        return ClientSession(base_url=self.base_url(name) + "/", headers=headers, **kwargs)


@asynccontextmanager
async def run_simulator(
    portals: list[SimulatedPortal], host: str = "127.0.0.1", port: int = 0, window_seconds: float = 60.0
) -> AsyncIterator[RunningSimulator]:
    """Serve `portals` until the block exits; port 0 picks a free port (read it from `.url`)."""
    runner = web.AppRunner(build_app(portals, window_seconds), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        yield RunningSimulator(f"http://{shown}:{bound}", list(portals))
    finally:
        await runner.cleanup()


async def serve_forever(
    portals: list[SimulatedPortal],
    host: str = "127.0.0.1",
    port: int = 8080,
    window_seconds: float = 60.0,
    on_ready: Callable[[RunningSimulator], None] | None = None,
) -> None:
    """For `idgraph simulate`: serve until cancelled; `on_ready` can print the URLs and credentials."""
    async with run_simulator(portals, host, port, window_seconds) as simulator:
        if on_ready is not None:
            on_ready(simulator)
        await asyncio.Event().wait()


def portal_password(seed: int, name: str) -> str:
    """The API key a generated portal accepts: stable for a seed, different per portal."""
    return hashlib.sha256(f"idgraph-simulator:{seed}:{name}".encode()).hexdigest()[:32]


def make_portals(
    names: list[str],
    users: int,
    seed: int,
    *,
    population: list[Person] | None = None,
    faults: FaultConfig | None = None,
    per_portal: Mapping[str, Mapping[str, Any]] | None = None,
    **overrides: Any,
) -> list[SimulatedPortal]:
    """Portals sharing one population; `overrides` apply to every PortalSpec, `per_portal[name]` to one.

    Credentials: username `api-{name}`, password `portal_password(seed, name)`; read them back from
    `portal.credentials`. Every other portal spells `customDataFieldDefintions` the way some real ones do.
    """
    specs = []
    for i, name in enumerate(names):
        fields: dict[str, Any] = {
            "name": name,
            "username": f"api-{name}",
            "password": portal_password(seed, name),
            "seed": seed,
            "users": users,
            "id_offset": (i + 1) * 1_000_000,
            "definitions_key_typo": i % 2 == 1,
        }
        fields.update(overrides)
        fields.update((per_portal or {}).get(name, {}))
        specs.append(PortalSpec(**fields))
    if population is None:  # half as many people again as the largest portal has accounts: portals overlap
        largest = max((s.users for s in specs), default=users)
        reference_time = overrides.get("reference_time", DEFAULT_REFERENCE_TIME)
        population = generate_population(seed, largest * 3 // 2 + 20, reference_time=reference_time)
    return [SimulatedPortal(s, generate_portal(s, population), faults, population) for s in specs]
