"""One way to open a Neo4j driver, for the export, the query library and the notebooks: it fails fast.

With the driver's defaults a closed port, an unreachable host or a server that does not speak Bolt took a
minute to fail (`idgraph query` against a closed port: 57 s — 30 s of transaction retries on top of the
connection attempts). `open_driver` reaches the server once, with a 4 s connect timeout inside a 6 s
acquisition deadline, before any work starts: it raises `ServiceUnavailable` within 6 s, so the command
(Python's start-up included) ends within 10 s. Once connected, the driver keeps its default transaction
retries, which a long export needs against transient errors.
"""

from __future__ import annotations

from neo4j import Driver, GraphDatabase

CONNECT_SECONDS = 4.0  # TCP connect and Bolt handshake of one connection
ACQUIRE_SECONDS = 6.0  # the whole wait for a connection (new or pooled): the bound `open_driver` keeps


def open_driver(uri: str, auth: tuple[str, str] | None) -> Driver:
    """A driver that has reached `uri` (and authenticated), or `ServiceUnavailable`/`AuthError` quickly."""
    driver = GraphDatabase.driver(
        uri, auth=auth, connection_timeout=CONNECT_SECONDS, connection_acquisition_timeout=ACQUIRE_SECONDS
    )
    try:
        driver.verify_connectivity()  # one attempt, no transaction retries
    except BaseException:
        driver.close()
        raise
    return driver
