import os
import sys
import time
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


def wait_for(predicate, timeout=60.0, every=0.05):
    """Poll until ``predicate()`` is truthy (and return it); a generous bound guards against hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


async def until(pilot, predicate, timeout=60.0):
    """The same inside a Pilot test: the app keeps running while we wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting for the app")


async def repainted(pilot, *widgets, timeout=60.0):
    """Wait until the compositor has drawn each widget on screen again, with what it holds now (a
    pane that cannot draw it raises there): waiting on the drawing, not a pause as long as a clock."""
    widgets = [widget for widget in widgets if widget.is_on_screen]
    drawn = set()
    for widget in widgets:
        def counting(crop, widget=widget, original=widget.render_lines):
            drawn.add(widget)
            return original(crop)

        widget.render_lines = counting
        widget.refresh()
    try:
        await until(pilot, lambda: len(drawn) == len(widgets), timeout)
    finally:
        for widget in widgets:
            del widget.render_lines


def notifications(app) -> list[str]:
    """Every toast the app raises from now on, as text (toasts expire; this list does not)."""
    seen: list[str] = []
    original = app.notify

    def notify(message, *args, **kwargs):
        seen.append(str(message))
        return original(message, *args, **kwargs)

    app.notify = notify
    return seen
