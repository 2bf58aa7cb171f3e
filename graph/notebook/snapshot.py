"""Finding the snapshot a notebook opens, and building the demo's when it is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from graph.notebook.common import DEMO_DB, REPO_ROOT


def locate_snapshot(db: str | Path, *, build_demo: bool = True) -> Path:
    """The snapshot file `db` names: as given, else relative to the repository (Jupyter runs notebooks
    from notebooks/). Only the demo's default path is built when missing (`idgraph demo`, a few seconds)."""
    path = Path(db).expanduser()
    root = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, root / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    if build_demo and path == Path(DEMO_DB):
        out = root / path.parent
        command = [sys.executable, "-m", "idgraph.cli", "demo", "--out", str(out), "--quiet"]
        subprocess.run(command, check=False, timeout=600)  # exit 3 (incomplete) still writes a snapshot
        if (out / path.name).exists():
            return (out / path.name).resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no snapshot at {db} (tried {tried}); run `idgraph demo` or set DB")
