"""Per-portal rate limits: the fixed window, the weekly budget, and which responses carry which headers."""

import asyncio
from email.utils import parsedate_to_datetime

import pytest

from crawler.simulator import FaultConfig, make_portals, run_simulator

pytestmark = pytest.mark.asyncio


async def burst(session, count: int) -> list[tuple[int, dict[str, str], str]]:
    out = []
    for _ in range(count):
        async with session.get("api/v1/groups") as resp:
            out.append((resp.status, dict(resp.headers), await resp.text()))
    return out


async def test_window_limit_then_recovery_without_retry_after():
    portals = make_portals(["emea", "amer"], 40, 1, rate_limit_per_window=5)
    async with run_simulator(portals, window_seconds=0.5) as sim, sim.session("emea") as s:
        answers = await burst(s, 7)
        assert [status for status, _, _ in answers] == [200] * 5 + [429] * 2
        assert [h["X-LU-Rate-Limit-Remaining-Minute"] for _, h, _ in answers[:5]] == ["4", "3", "2", "1", "0"]
        assert [h["X-LU-Rate-Limit-Remaining-Week"] for _, h, _ in answers[:2]] == ["499999", "499998"]
        for _, headers, text in answers[5:]:
            assert text == "Number of requests has exceeded the 1 minute limit"
            assert "Retry-After" not in headers and "X-LU-Rate-Limit-Remaining-Minute" not in headers
        async with sim.session("amer") as other:  # limits are per portal
            assert [status for status, _, _ in await burst(other, 3)] == [200] * 3
        await asyncio.sleep(0.55)
        assert [status for status, _, _ in await burst(s, 2)] == [200, 200]
        assert sim.portal("emea").stats.status_counts == {200: 7, 429: 2}
        assert sim.portal("emea").limits.remaining_week == 500_000 - 7


@pytest.mark.parametrize("style", ["seconds", "http-date"])
async def test_retry_after_when_the_knob_says_so(style):
    portals = make_portals(["emea"], 30, 1, rate_limit_per_window=2)
    portals[0].faults = FaultConfig(retry_after=style)
    async with run_simulator(portals, window_seconds=3.0) as sim, sim.session("emea") as s:
        status, headers, _ = (await burst(s, 3))[-1]
    assert status == 429
    if style == "seconds":
        assert 1 <= int(headers["Retry-After"]) <= 3
    else:
        assert parsedate_to_datetime(headers["Retry-After"]).tzinfo is not None


async def test_week_budget_runs_out():
    portals = make_portals(["emea"], 30, 1, week_budget=3)
    async with run_simulator(portals) as sim, sim.session("emea") as s:
        answers = await burst(s, 4)
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    assert answers[2][1]["X-LU-Rate-Limit-Remaining-Week"] == "0"
    assert "week" in answers[3][2]


async def test_rate_headers_only_on_2xx_and_only_where_configured():
    portals = make_portals(["real", "quiet", "seed"], 30, 1, per_portal={"seed": {"dialect": "seed"}})
    portals[1].faults = FaultConfig(rate_headers=False)
    async with run_simulator(portals) as sim:
        async with sim.session("real") as s:
            for path, status in [("api/v1/users", 200), ("api/v1/users/1", 404), ("api/v1/enrollments", 401)]:
                async with s.get(path) as resp:
                    assert resp.status == status
                    assert ("X-LU-Rate-Limit-Remaining-Minute" in resp.headers) == (status == 200)
        for name in ("quiet", "seed"):
            async with sim.session(name) as s, s.get("api/v1/users") as resp:
                assert resp.status == 200 and "X-LU-Rate-Limit-Remaining-Minute" not in resp.headers


@pytest.mark.parametrize(("burst_size", "admitted"), [(5, 5), (0, 30)])
async def test_a_token_bucket_holds_its_burst_and_no_more(burst_size, admitted):
    """`rate_burst` sets what a token bucket holds (0: a tenth of the limit): a burst beyond it is refused."""
    portals = make_portals(
        ["emea"], 30, 1, rate_limit_per_window=300, rate_limiter="token_bucket", rate_burst=burst_size
    )
    async with run_simulator(portals, window_seconds=6000.0) as sim, sim.session("emea") as s:
        answers = await burst(s, admitted + 3)  # one request refilled per 20 s: none in this burst
    assert [status for status, _, _ in answers] == [200] * admitted + [429] * 3
