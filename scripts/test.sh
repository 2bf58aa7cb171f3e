#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run it all (lint + tests).
# Used as-is by .ci/run. Re-running is cheap: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# Exactly the locked versions, each checked against its hash (requirements/test.lock; README, "Production
# install"); then idgraph itself, without letting pip resolve anything else.
.venv/bin/python -m pip install -q --require-hashes -r requirements/test.lock
.venv/bin/python -m pip install -q --no-deps -e .

# Headless Chromium checks the HTML report; Debian's package is the only browser this machine can get.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: chromium missing and not root: the browser test will skip (apt-get install chromium)" >&2
    fi
fi

# A real Neo4j (neo4j-harness from Maven Central) for the export tests; built once, cached in ~/.m2.
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            openjdk-17-jdk-headless maven >/dev/null
    fi
fi
if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
    bash tests/neo4j-server/build.sh
else
    echo "note: java/mvn missing: Neo4j tests will skip (install OpenJDK 17 + Maven, or set NEO4J_URI)" >&2
fi

.venv/bin/ruff check .
# The layer contract (pyproject.toml, [tool.importlinter]): crawler/ never imports graph/ or idgraph/.
.venv/bin/lint-imports
# Types of crawler/, graph/ and idgraph/ (pyproject.toml, [tool.mypy]).
.venv/bin/mypy
.venv/bin/pytest -q "$@"
