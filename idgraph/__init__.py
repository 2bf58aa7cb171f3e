"""The `idgraph` command: the one composition root that may import both crawler/ and graph/.

crawler/ (sources, the crawl, the snapshot) knows nothing of graph/ (resolution, findings, reports); these
modules wire the two into commands. See docs/architecture.md.
"""
