import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPTED = ROOT / "tests" / "children" / "scripted.py"


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A private runs directory; every Monitor and CLI call in the test lands there."""
    root = tmp_path / "runs"
    monkeypatch.setenv("NEUROTOP_RUNS", str(root))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return root


def scripted(*args: str) -> list[str]:
    """The argv of the fake, torch-free training child."""
    return [sys.executable, str(SCRIPTED), *args]


@pytest.fixture(autouse=True)
def no_orphans():
    """Children that a test started (in their own sessions, so they would survive) end with it."""
    import psutil

    yield
    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass
