"""Starting and stopping the simulator: ephemeral ports, many portals on one port, the standalone loop."""

import asyncio

import aiohttp
import pytest

from crawler.simulator import RunningSimulator, make_portals, run_simulator, serve_forever

pytestmark = pytest.mark.asyncio


async def test_many_portals_one_port_each_with_its_own_credentials():
    portals = make_portals(["emea", "amer", "apac"], 40, 2)
    async with run_simulator(portals) as sim:
        assert sim.url.startswith("http://127.0.0.1:") and not sim.url.endswith(":0")
        assert sim.base_url("amer") == sim.url + "/amer"
        with pytest.raises(KeyError):
            sim.portal("nope")
        for portal in portals:
            assert portal.credentials[0] == f"api-{portal.name}" and len(portal.credentials[1]) == 32
            async with sim.session(portal.name) as s, s.get("api/v1/users") as resp:
                ids = [u["id"] for u in (await resp.json())["user"]]
            assert ids == sorted(portal.data.users)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientConnectionError):
            await s.get(sim.base_url("emea") + "/api/v1/users")  # stopped with the block


async def test_serve_forever_until_cancelled():
    ready: asyncio.Queue[RunningSimulator] = asyncio.Queue()
    portals = make_portals(["emea"], 20, 3)
    task = asyncio.create_task(serve_forever(portals, port=0, on_ready=ready.put_nowait))
    sim = await asyncio.wait_for(ready.get(), 5)
    async with sim.session("emea") as s, s.get("api/v1/groups") as resp:
        assert resp.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_duplicate_portal_names_are_refused():
    with pytest.raises(ValueError, match="emea"):
        async with run_simulator(make_portals(["emea", "emea"], 20, 3)):
            pass
