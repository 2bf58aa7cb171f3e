"""The simulator over real HTTP on loopback: shapes, paging and the traps of the real LearnUpon API."""

from collections import Counter

import aiohttp
import pytest
import pytest_asyncio

from crawler.simulator import ENROLLMENT_STATUSES, make_portals, run_simulator

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def sim():
    portals = make_portals(
        ["emea", "amer"], 120, 3, page_size=37, per_portal={"amer": {"page_size": 500, "users": 600}}
    )
    async with run_simulator(portals) as running:
        yield running


async def crawl(session: aiohttp.ClientSession, path: str, key: str, **params) -> list[dict]:
    """Follow LU-Has-Next-Page, checking the paging headers on every page."""
    records, page = [], 1
    while True:
        async with session.get(path, params={**params, "page": page}) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert resp.headers["LU-Current-Page"] == str(page)
            size = int(resp.headers["LU-Records-Per-Page"])
            has_next = resp.headers["LU-Has-Next-Page"]
        assert has_next in ("true", "false")
        if has_next == "true":
            assert len(body[key]) == size
        records += body[key]
        if has_next == "false":
            return records
        page += 1


@pytest.mark.parametrize(("portal", "size"), [("emea", 37), ("amer", 500)])
async def test_users_pages_follow_the_headers(sim, portal, size):
    data = sim.portal(portal).data
    async with sim.session(portal) as s:
        users = await crawl(s, "api/v1/users", "user")
        assert [u["id"] for u in users] == sorted(data.users)
        async with s.get("api/v1/users", params={"page": 2}) as resp:
            assert resp.headers["LU-Records-Per-Page"] == str(size)
        last = -(-len(data.users) // size)
        async with s.get("api/v1/users", params={"page": last + 1}) as resp:
            assert resp.headers["LU-Has-Next-Page"] == "false"
            assert (await resp.json())["user"] == []
    assert sim.portal(portal).stats.by_endpoint["GET /users"] == last + 2


async def test_user_record_shape_and_version_1_1(sim):
    async with sim.session("emea") as s:
        async with s.get("api/v1/users") as resp:
            body = await resp.json()
        assert next(iter(body)) == "customDataFieldDefinitions" and "user" in body
        user = body["user"][0]
        assert "updated_at" not in user and isinstance(user["enabled"], bool) and "is_active" not in user
        assert {
            "id",
            "email",
            "first_name",
            "last_name",
            "created_at",
            "last_sign_in_at",
            "sign_in_count",
            "number_of_enrollments",
            "user_type",
            "CustomData",
            "customDataFieldValues",
        } <= set(user)
        async with s.get("api/v1/users", params={"version_id": "1.1"}) as resp:
            assert "updated_at" in (await resp.json())["user"][0]
        async with s.get(f"api/v1/users/{user['id']}") as resp:
            assert (await resp.json())["user"] == [user]
        async with s.get("api/v1/users/1") as resp:
            assert resp.status == 404 and "message" in await resp.json()
    async with sim.session("amer") as s, s.get("api/v1/users") as resp:
        assert "customDataFieldDefintions" in await resp.json()  # the misspelling some portals send


async def test_auth_content_type_and_unknown_routes(sim):
    url = sim.base_url("emea") + "/api/v1/users"
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as resp:
            assert resp.status == 401 and "message" in await resp.json()
        amer = {"Authorization": aiohttp.encode_basic_auth(*sim.portal("amer").credentials)}
        async with s.get(url, headers=amer) as resp:
            assert resp.status == 401 and "X-LU-Rate-Limit-Remaining-Minute" not in resp.headers
        async with s.get(f"{sim.url}/nowhere/api/v1/users", headers=amer) as resp:
            assert resp.status == 404
    async with sim.session("emea") as s:
        async with s.get("api/v1/users", headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400
            assert await resp.json() == {"error": "There was a problem in the JSON you submitted."}
        for path, status in [
            ("api/v1/enrollments", 401),
            ("api/v1/group_memberships", 404),
            ("api/v1/no_such_thing", 404),
        ]:
            async with s.get(path) as resp:
                assert resp.status == status, path
        course = sim.portal("emea").data.visible_course_ids()[0]
        async with s.get(f"api/v1/courses/{course}") as resp:
            assert resp.status == 404
    stats = sim.portal("emea").stats
    assert stats.status_counts[401] == 3 and stats.status_counts[400] == 1
    assert stats.by_endpoint["GET /courses/{id}"] == 1
    assert ("GET", "/users", {}, 401) in stats.log


async def test_unknown_filters_are_ignored_and_search_is_case_insensitive(sim):
    data = sim.portal("emea").data
    some = next(u for u in data.users.values() if u.get("email"))
    async with sim.session("emea") as s:
        async with s.get("api/v1/users", params={"email": some["email"]}) as resp:
            assert len((await resp.json())["user"]) == 37  # not a filter on /users
        async with s.get("api/v1/users", params={"group_id": 1}) as resp:
            assert len((await resp.json())["user"]) == 37
        async with s.get("api/v1/users/search", params={"email": some["email"].upper()}) as resp:
            assert [u["id"] for u in (await resp.json())["user"]] == [some["id"]]
        async with s.get("api/v1/users/search", params={"user_id": some["id"]}) as resp:
            assert len((await resp.json())["user"]) == 37  # the whole roster, paged
        async with s.get("api/v1/users/search", params={"email": "nobody@acme.com"}) as resp:
            assert resp.status == 404


async def test_groups_and_memberships(sim):
    data = sim.portal("emea").data
    async with sim.session("emea") as s:
        groups = await crawl(s, "api/v1/groups", "groups")
        assert [g["id"] for g in groups] == sorted(data.groups)
        group = max(groups, key=lambda g: len(data.members_of(g["id"])))
        members = await crawl(s, "api/v1/group_memberships", "user", group_id=group["id"], version_id="1.1")
        assert [m["id"] for m in members] == data.members_of(group["id"])
        assert set(members[0]) >= {"id", "first_name", "last_name", "created_at", "locale", "membership_id"}
        async with s.get("api/v1/group_memberships", params={"group_id": group["id"]}) as resp:
            assert "membership_id" not in (await resp.json())["user"][0]
        async with s.get("api/v1/group_memberships", params={"user_id": members[0]["id"]}) as resp:
            assert group["id"] in [g["id"] for g in (await resp.json())["group"]]
        async with s.get("api/v1/groups", params={"title": group["title"].upper()}) as resp:
            assert [g["id"] for g in (await resp.json())["groups"]] == [group["id"]]


async def test_courses_hide_drafts_unless_asked_and_archived_always(sim):
    data = sim.portal("emea").data
    async with sim.session("emea") as s:
        published = await crawl(s, "api/v1/courses", "courses")
        visible = await crawl(s, "api/v1/courses", "courses", include_draft="true")
        assert len(published) == 12 and [c["id"] for c in visible] == data.visible_course_ids()
        assert all("archived" not in c for c in visible)
        draft = next(c for c in visible if not c["published"])
        params = {"course_id": draft["id"], "include_draft": "true"}
        async with s.get("api/v1/courses", params=params) as resp:
            assert [c["id"] for c in (await resp.json())["courses"]] == [draft["id"]]


async def test_per_course_listing_reveals_the_enrollment_count_mismatch(sim):
    data = sim.portal("emea").data
    seen: Counter[int] = Counter()
    statuses = set()
    async with sim.session("emea") as s:
        users = await crawl(s, "api/v1/users", "user")
        for course in await crawl(s, "api/v1/courses", "courses", include_draft="true"):
            for row in await crawl(s, "api/v1/enrollments/search", "enrollments", course_id=course["id"]):
                assert row["course_id"] == course["id"]
                seen[row["user_id"]] += 1
                statuses.add(row["status"])
        mismatched = {u["id"] for u in users if u["number_of_enrollments"] != seen[u["id"]]}
        assert mismatched and mismatched == data.users_with_hidden_enrollments()
        uid = min(mismatched)
        rows = await crawl(s, "api/v1/enrollments/search", "enrollments", user_id=uid)
        assert len(rows) == data.users[uid]["number_of_enrollments"]
        email = data.users[uid].get("email")
        if email:
            rows = await crawl(s, "api/v1/enrollments/search", "enrollments", email=email.swapcase())
            assert {r["user_id"] for r in rows} >= {uid}
    assert statuses == set(ENROLLMENT_STATUSES)


async def test_enrollment_date_filters(sim):
    data = sim.portal("emea").data
    async with sim.session("emea") as s:
        rows = await crawl(
            s, "api/v1/enrollments/search", "enrollments", date_from="2025-06-01", date_to="2025-12-31"
        )
    expected = sorted(
        e for e, r in data.enrollments.items() if "2025-06-01" <= r["updated_at"][:10] <= "2025-12-31"
    )
    assert [r["id"] for r in rows] == expected and expected


@pytest.mark.parametrize("dialect", ["seed", "seed_wrapped"])
async def test_seed_dialects(dialect):
    portals = make_portals(["old"], 130, 5, dialect=dialect)
    data = portals[0].data
    async with run_simulator(portals) as sim, sim.session("old") as s:
        users, page = [], 1
        while True:  # no LU-* headers: stop at the first empty page
            async with s.get("api/v1/users", params={"page": page}) as resp:
                assert not any(h.startswith(("LU-", "X-LU-")) for h in resp.headers)
                body = await resp.json()
            batch = body if dialect == "seed" else body["users"]
            assert len(batch) <= 50
            if not batch:
                break
            users += batch
            page += 1
        assert [u["id"] for u in users] == sorted(data.users) and page == 4
        assert "is_active" in users[0] and "role" in users[0] and "enabled" not in users[0]
        async with s.get(f"api/v1/users/{users[0]['id']}") as resp:
            one = await resp.json()
        assert one["id"] == users[0]["id"] if dialect == "seed" else one["users"][0]["id"] == users[0]["id"]
        for path, key in [
            ("api/v1/groups", "groups"),
            ("api/v1/courses", "courses"),
            (f"api/v1/enrollments/search?user_id={users[0]['id']}", "enrollments"),
        ]:
            async with s.get(path) as resp:
                body = await resp.json()
            assert isinstance(body, list) if dialect == "seed" else list(body) == [key]


async def test_writes_need_the_capitalised_wrapper_and_can_silently_do_nothing(sim):
    portal = sim.portal("emea")
    uid = next(u for u, rec in portal.data.users.items() if rec["enabled"])
    async with sim.session("emea") as s:
        for bad in [{"enabled": False}, {"user": {"enabled": False}}]:
            async with s.put(f"api/v1/users/{uid}", json=bad) as resp:
                assert resp.status == 404
                assert await resp.json() == {"message": "Invalid user parameters provided"}
        async with s.put(f"api/v1/users/{uid}", json={"User": {"is_active": False}}) as resp:
            assert resp.status == 200  # the seed's field name: accepted, ignored
        assert portal.data.users[uid]["enabled"] is True
        portal.faults.silent_noop_writes = True
        async with s.put(f"api/v1/users/{uid}", json={"User": {"enabled": False}}) as resp:
            assert resp.status == 200
        assert portal.data.users[uid]["enabled"] is True
        portal.faults.silent_noop_writes = False
        async with s.put(f"api/v1/users/{uid}", json={"User": {"enabled": False}}) as resp:
            assert resp.status == 200 and await resp.json() == {"id": uid}
        async with s.get(f"api/v1/users/{uid}") as resp:
            assert (await resp.json())["user"][0]["enabled"] is False
        async with s.put("api/v1/users/1", json={"User": {"enabled": False}}) as resp:
            assert resp.status == 404
        assert portal.stats.writes == 6 and portal.stats.deletes == 0
        async with s.delete(f"api/v1/users/{uid}") as resp:
            assert resp.status == 200 and await resp.json() == {}
        assert portal.stats.deletes == 1 and uid not in portal.data.users


async def test_membership_deletes_by_id_and_by_body(sim):
    portal = sim.portal("emea")
    (first, (g1, u1)), (second, (g2, u2)) = list(portal.data.memberships.items())[:2]
    members_before = portal.data.groups[g1]["number_of_members"]
    async with sim.session("emea") as s:
        async with s.delete(f"api/v1/group_memberships/{first}") as resp:
            assert resp.status == 200 and await resp.json() == {}
        body = {"GroupMembership": {"group_id": g2, "user_id": u2}}
        async with s.delete("api/v1/group_memberships/0", json=body) as resp:
            assert resp.status == 200
        async with s.delete(f"api/v1/group_memberships/{first}") as resp:
            assert resp.status == 404
    assert first not in portal.data.memberships and second not in portal.data.memberships
    assert u1 not in portal.data.members_of(g1)
    assert portal.data.groups[g1]["number_of_members"] == members_before - 1 - (g1 == g2)
    assert portal.stats.deletes == 3 and portal.stats.by_endpoint["DELETE /group_memberships/{id}"] == 3
