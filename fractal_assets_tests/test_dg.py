"""``dg`` (dagster-dg-cli, a dev dependency of the same release line) loads the code location."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).parent / "dg"


def test_dg_check_defs_loads_every_definition() -> None:
    if not DG.exists() and shutil.which("dg") is None:
        pytest.skip("dagster-dg-cli is not installed (pip install -e '.[dev]')")
    done = subprocess.run([str(DG if DG.exists() else "dg"), "check", "defs"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully." in done.stdout + done.stderr
