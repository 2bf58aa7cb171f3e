"""Shared pytest setup: the real Neo4j server fixture (tests/neo4j_fixture.py) for export tests, and a
SIGINT the Ctrl-C tests' subprocesses can receive however the suite was started."""

import signal

pytest_plugins = ["neo4j_fixture"]

# A suite started in the background (`nohup …`, `cmd &` in a script) inherits SIGINT ignored, and an
# ignored signal stays ignored across exec: every `idgraph` the Ctrl-C tests start would ignore their
# SIGINT and run to the end. A Python-level handler here is reset to the default on exec, so the
# children start as a terminal's would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
