"""Sources and everything network-facing: config, the network, the crawl, the snapshot, remediation acting.

It imports nothing from graph/ or idgraph/ (CI checks it). The map: docs/architecture.md.
"""
