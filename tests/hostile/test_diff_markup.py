"""Issue 14 item 6: `idgraph diff` prints an email full of markup from a hostile portal as plain text."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from hostile_fakes import PORTAL_ENV, hostile, run_cli

HOSTILE_EMAIL = "eve[/bold][link=https://attacker.example]x[/link]\u001b[2J@acme.com"


async def test_diff_of_runs_with_a_markup_email_prints_it_literally(tmp_path: Path) -> None:
    users = [{"id": 1, "email": "ana@acme.com", "enabled": True, "user_type": "learner"}]

    async def handler(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        if request.path.endswith("/users"):
            return web.json_response({"user": users if page == 1 else []})
        return web.json_response({"groups": [], "courses": []})

    config = tmp_path / "c.toml"
    async with hostile(handler) as portal:
        config.write_text(
            '[review]\nmanaged_domains = ["acme.com"]\n\n'
            f'[[portals]]\nname = "emea"\nbase_url = "{portal.url}"\n'
            'username_env = "LU_USER"\npassword_env = "LU_PASS"\nrate_window_seconds = 1.0\n'
        )
        db = str(tmp_path / "s.db")
        for run in (1, 2):
            if run == 2:  # the second run brings a new never-signed-in (dormant) account
                users.append({"id": 2, "email": HOSTILE_EMAIL, "enabled": True, "user_type": "learner"})
            code, _, err = await run_cli(
                "crawl", "--config", str(config), "--db", db, env=PORTAL_ENV, cwd=tmp_path
            )
            assert code in (0, 3), err
            code, _, err = await run_cli(
                "report", "--db", db, "--out", str(tmp_path / f"r{run}"), env={}, cwd=tmp_path
            )
            assert code in (0, 3), err
    code, out, err = await run_cli("diff", "--db", db, env={"FORCE_COLOR": "1"}, cwd=tmp_path)
    assert code == 0, err
    text = out + err
    assert "Traceback" not in text
    assert "eve[/bold][link=https://attacker.example]x[/link]\\x1b[2J@acme.com" in text.replace("\n", "")
    assert "\x1b]8;" not in text and "\x1b[2J" not in text
