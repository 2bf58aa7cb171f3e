"""The notebooks' helpers, one concern per module; `graph.notebook_api` is the one entry point."""
