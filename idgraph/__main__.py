"""`python -m idgraph …`: the same command as the `idgraph` script."""

from idgraph.cli import main

main()
