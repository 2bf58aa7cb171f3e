"""`report --config` and `export neo4j --config` read a config's [review] table the same way: that table
only, so the crawl's credentials need not be set where the review happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import ConfigError, load_config, load_review_config

CONFIG = """
[review]
managed_domains = ["@ACME.com", " "]
dormant_days = {days}

[[portals]]
name = "emea"
base_url = "https://acme-emea.learnupon.com"
username_env = "IDGRAPH_TEST_UNSET_USER"
password_env = "IDGRAPH_TEST_UNSET_PASSWORD"
"""


def test_the_review_table_is_read_without_the_crawls_secrets(tmp_path: Path) -> None:
    path = tmp_path / "idgraph.toml"
    path.write_text(CONFIG.format(days=30), encoding="utf-8")
    with pytest.raises(ConfigError, match="IDGRAPH_TEST_UNSET_USER is not set"):
        load_config(path, env={})
    review = load_review_config(path)
    assert (review.managed_domains, review.dormant_days) == (["acme.com"], 30)


def test_a_bad_review_table_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "idgraph.toml"
    path.write_text(CONFIG.format(days=0), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^review\.dormant_days: "):
        load_review_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_review_config(tmp_path / "missing.toml")
