"""Resolution, findings, history, reports, Neo4j and notebooks, read from the snapshot crawler/ wrote.

It may import crawler/, never idgraph/, and never talks to a source. The map: docs/architecture.md.
"""
