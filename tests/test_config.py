"""Config validation: every bad input is one line naming the field; secrets come only from env vars."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import ConfigError, load_config, parse_config

ENV = {"U": "api-user", "P": "s3cret-pass", "OKTA": "okta-token-xyz", "ENTRA": "entra-secret"}


def portal(name: str = "emea", base_url: str = "https://acme-emea.learnupon.com", **extra: object) -> dict:
    return {"name": name, "base_url": base_url, "username_env": "U", "password_env": "P", **extra}


def test_contract_example_parses_and_resolves_secrets() -> None:
    raw = {
        "review": {"managed_domains": ["ACME.com"], "dormant_days": 90},
        "portals": [portal()],
        "idps": [
            {"name": "okta", "type": "okta", "base_url": "https://acme.okta.com", "token_env": "OKTA"},
            {
                "name": "entra", "type": "entra", "tenant_id": "t", "client_id": "c",
                "client_secret_env": "ENTRA", "login_url": "https://login.microsoftonline.com",
                "graph_url": "https://graph.microsoft.com",
            },
        ],
    }  # fmt: skip
    config = parse_config(raw, env=ENV)
    assert config.review.managed_domains == ["acme.com"]
    assert config.portals[0].password is not None
    assert config.portals[0].password.get_secret_value() == "s3cret-pass"
    assert config.idps[0].token.get_secret_value() == "okta-token-xyz"
    dumped = config.model_dump_json()
    assert "s3cret-pass" not in dumped and "okta-token-xyz" not in dumped and "entra-secret" not in dumped
    assert "s3cret-pass" not in repr(config)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"portals": [portal(colour="blue")]}, "portals[0].colour: unknown key"),
        ({"portals": [portal()], "extra": 1}, "extra: unknown key"),
        (
            {"portals": [portal(password_env="MISSING")]},
            "portals[0].password_env: environment variable MISSING",
        ),
        (
            {"portals": [portal(base_url="http://acme.learnupon.com")]},
            "portals[0].base_url: plain http is only allowed for loopback hosts",
        ),
        ({"portals": [portal(), portal()]}, "portals[1].name: duplicate source name 'emea'"),
        (
            {"portals": [portal(password="inline")]},
            "portals[0].password: secrets never go in the config file",
        ),
        (
            {"portals": [{"name": "x", "base_url": "https://x.learnupon.com"}]},
            "portals[0].username_env: Field",
        ),
        (
            {
                "portals": [portal()],
                "idps": [{"name": "o", "type": "okta", "base_url": "https://o.okta.com"}],
            },
            "idps[0].token_env: Field required",
        ),
        ({"portals": [portal()], "idps": [{"name": "o", "type": "ldap"}]}, "idps[0].type"),
        ({"review": {"dormant_days": 0}, "portals": [portal()]}, "review.dormant_days"),
        ({}, "nothing to crawl"),
    ],
)
def test_bad_config_names_the_field(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env=ENV)
    text = str(caught.value)
    assert message in text
    assert all("\n" not in problem for problem in caught.value.problems)  # each problem is one line


def test_plain_http_is_fine_on_loopback() -> None:
    for url in ("http://127.0.0.1:8080/emea", "http://localhost:1/x", "http://[::1]:9/p"):
        assert parse_config({"portals": [portal(base_url=url)]}, env=ENV).portals[0].base_url == url


def test_load_config_reports_toml_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[portals]\nname = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env=ENV)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", env=ENV)


def test_remediation_key_comes_from_the_env_var_the_config_names() -> None:
    raw = {"portals": [portal()], "remediation": {"key_env": "RKEY", "plan_max_age_hours": 24}}
    config = parse_config(raw, env={**ENV, "RKEY": "remediation-key-0123456789"})
    assert config.remediation.key is not None
    assert config.remediation.key.get_secret_value() == "remediation-key-0123456789"
    assert config.remediation.plan_max_age_hours == 24
    assert "remediation-key-0123456789" not in config.model_dump_json() + repr(config)
    assert parse_config({"portals": [portal()]}, env=ENV).remediation.key is None
    with pytest.raises(ConfigError, match=r"^remediation.key_env: environment variable RKEY is not set$"):
        parse_config(raw, env=ENV)
    with pytest.raises(ConfigError, match=r"^remediation.key: secrets never go in the config file"):
        parse_config({"portals": [portal()], "remediation": {"key": "inline"}}, env=ENV)
    with pytest.raises(ConfigError, match=r"^remediation.plan_max_age_hours"):
        parse_config({"portals": [portal()], "remediation": {"plan_max_age_hours": 0}}, env=ENV)


def test_a_base_url_pasted_with_api_v1_is_not_doubled(caplog) -> None:
    raw = {
        "portals": [{"name": "emea", "base_url": "https://acme.learnupon.com/api/v1/", "username_env": "U",
                     "password_env": "P"}],
        "idps": [{"name": "okta", "type": "okta", "base_url": "https://acme.okta.com/API/v1",
                  "token_env": "T"}],
    }  # fmt: skip
    with caplog.at_level("WARNING", logger="idgraph.config"):
        cfg = parse_config(raw, env={"U": "u", "P": "p", "T": "t"})
    assert cfg.portals[0].base_url == "https://acme.learnupon.com"
    assert cfg.idps[0].base_url == "https://acme.okta.com"
    assert "ends in /api/v1" in caplog.text


def test_init_writes_a_sample_config_that_validates(tmp_path) -> None:
    import subprocess
    import sys
    import tomllib

    target = tmp_path / "idgraph.toml"
    run = [sys.executable, "-m", "idgraph.cli", "init", str(target)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    raw = tomllib.loads(target.read_text())
    env = {name: "x" * 20 for name in ("LU_EMEA_USERNAME", "LU_EMEA_PASSWORD", "OKTA_API_TOKEN")}
    cfg = parse_config(raw, env=env)
    assert [p.name for p in cfg.portals] == ["emea"] and [i.name for i in cfg.idps] == ["okta"]
    again = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites without --force


def test_every_problem_is_reported_at_once_schema_errors_and_unset_variables_alike() -> None:
    raw = {
        "review": {"dormant_days": 0},
        "portals": [
            portal(colour="blue", password_env="LU_EMEA_PASSWORD"),
            portal("apac", base_url="http://acme-apac.learnupon.com", username_env="LU_APAC_USER"),
        ],
        "idps": [{"name": "okta", "type": "okta", "base_url": "https://a.okta.com", "token_env": "OKTA_T"}],
        "remediation": {"key": "inline-key-never-shown"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env=ENV)
    problems = caught.value.problems
    assert problems == (
        "portals[0].password_env: environment variable LU_EMEA_PASSWORD is not set",
        "portals[1].username_env: environment variable LU_APAC_USER is not set",
        "idps[0].token_env: environment variable OKTA_T is not set",
        "remediation.key: secrets never go in the config file; set key_env to the name of an environment "
        "variable",
        "review.dormant_days: Input should be greater than or equal to 1",
        "portals[0].colour: unknown key",
        "portals[1].base_url: plain http is only allowed for loopback hosts, use https for "
        "acme-apac.learnupon.com",
    )
    text = str(caught.value)
    assert text.startswith("7 problems:\n") and all(f"\n  {p}" in text for p in problems)
    assert "inline-key-never-shown" not in text


def test_the_review_table_alone_reports_every_problem(tmp_path: Path) -> None:
    from crawler.config import load_review_config

    path = tmp_path / "idgraph.toml"
    path.write_text('[review]\ndormant_days = 0\nmanaged_domains = "acme.com"\ncolour = 1\n')
    with pytest.raises(ConfigError) as caught:
        load_review_config(path)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "review.managed_domains",
        "review.dormant_days",
        "review.colour",
    ]
