"""Every screen as a snapshot, drawn from a fixed journal: an attached finished run (no live clock),
no system sampler, fixed sizes, UTC, a fixed run directory and a fixed UI memory figure. The
dialogs that only a live run offers (quit: stop or leave running; edit) attach to the same journal
still running, with the wall clock stopped at its last step.

After a deliberate change to what a screen shows, look at the report and regenerate:

    .venv/bin/python -m pytest tests/test_snapshots.py --snapshot-update

(`tests/__snapshots__/test_snapshots/*.svg`; open one in a browser to see it.)
"""

from __future__ import annotations

import os
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from tests.conftest import until
from tests.journals import T0, demo_messages, write_run
from neurotop.trainer import journal
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link

STEPS = 600
# Each screen: the key that opens it from the dashboard, the class of the screen it shows, and
# whether it needs the run live. Keys and screens move with the app; adjust them here.
SCREENS = {
    "pathways": ("v", "PathwaysScreen", False),
    "help": ("question_mark", "HelpScreen", False),
    "diagnostics": ("d", "DiagnosticsScreen", False),
    "quit": ("q", "QuitScreen", True),
    "edit": ("e", "PromptScreen", True),
    "choice": ("r", "ChoiceScreen", False),  # restart asks first: the same dialog as the guard's choices
}


@pytest.fixture
def fixed_app(tmp_path, monkeypatch):
    """The app attached to the fixed journal, built inside a test's own folder and time zone."""
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    monkeypatch.chdir(tmp_path)  # the run directory is shown relative: the same path in every run
    monkeypatch.setattr("neurotop.tui.screens.diagnostics.psutil", fixed_psutil())
    # the quit dialog's reopen line names this machine's executable and runs folder (tested in
    # test_attach); the picture holds a fixed one
    monkeypatch.setattr("neurotop.tui.app.attach_command", lambda run_dir: f"neurotop attach {run_dir.name}")

    def make(live: bool = False) -> NeurotopApp:
        """``live``: the run has not ended, its process (this one) is alive, and the clock stands still."""
        if live:
            monkeypatch.setattr(time, "time", lambda: T0 + STEPS / 100)
        written = write_run(tmp_path / "runs", demo_messages(STEPS, finished=not live),
                            state="running" if live else "finished", pid=os.getpid() if live else 1)
        run_dir = written.rename(written.parent / "fixed-run").relative_to(tmp_path)
        info = journal.RunInfo.load(run_dir)
        info.id, info.host, info.command = run_dir.name, "test", ["python", "train.py"]
        info.save(run_dir)
        return NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), name="fixed",
                           refresh_hz=20, pictures_hz=20, sample_system=False, read_only=not live, show_ui_cost=False)

    yield make
    if zone is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = zone
    time.tzset()


def fixed_psutil() -> SimpleNamespace:
    """The UI's own memory and threads, as the diagnostics read them: the same figure every time."""
    memory = SimpleNamespace(rss=100_000_000)
    return SimpleNamespace(Process=lambda pid=None: SimpleNamespace(memory_info=lambda: memory, num_threads=lambda: 4))


def journal_read(store) -> bool:
    """The whole fixed journal is in the store, and the run's two lines of output."""
    run = store.run
    return (run.finished or not run.read_only) and run.step == STEPS and store.output.total == 2


async def settled(pilot) -> None:
    """The journal is read and each pane of the current screen has been refreshed from it twice
    (the text panes settle the layout that the pictures then fill)."""
    app = pilot.app
    await until(pilot, lambda: journal_read(app.store))
    refreshed = Counter()
    panes = [w for w in app.screen.query("*") if callable(getattr(w, "refresh_from", None))]
    for pane in panes:
        def counting(*args, pane=pane, original=pane.refresh_from, **kwargs):
            refreshed[pane] += 1
            return original(*args, **kwargs)

        pane.refresh_from = counting
    try:
        await until(pilot, lambda: all(refreshed[pane] >= 2 for pane in panes))
    finally:
        for pane in panes:
            del pane.refresh_from
    await pilot.pause()


def opened(name: str):
    """What snap_compare runs before its screenshot: the dashboard settles, the key opens the screen."""
    key, screen, _ = SCREENS[name]

    async def run_before(pilot) -> None:
        await settled(pilot)
        await pilot.press(key)
        await until(pilot, lambda: type(pilot.app.screen).__name__ == screen)
        for field in pilot.app.screen.query("Input"):
            field.cursor_blink = False  # a blinking cursor is in one picture and not the next
        await settled(pilot)

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard(snap_compare, fixed_app, size):
    assert snap_compare(fixed_app(), terminal_size=size, run_before=settled)


def test_tiny_layout(snap_compare, fixed_app):
    """Below 70×20: the loss and the params only."""
    assert snap_compare(fixed_app(), terminal_size=(60, 18), run_before=settled)


def test_no_color(snap_compare, fixed_app, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(fixed_app(), terminal_size=(120, 40), run_before=settled)


@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare, fixed_app, screen):
    assert snap_compare(fixed_app(live=SCREENS[screen][2]), terminal_size=(120, 40), run_before=opened(screen))


async def test_zoom_pan_follow_and_smoothing_keys(fixed_app):
    from neurotop.tui.widgets.loss_chart import LossChart

    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        chart = app.query_one(LossChart)
        assert chart.window(app.store) == (None, None) and "whole run" in chart.border_subtitle
        await pilot.press("z", "z")
        span = int((STEPS - 1) * 0.25)  # steps 1..600, halved twice
        assert chart.span == span
        assert chart.window(app.store) == (STEPS - span, STEPS) and f"{span} steps" in chart.border_subtitle and "following" in chart.border_subtitle
        await pilot.press("left")
        lo, hi = chart.window(app.store)
        assert hi < STEPS and hi - lo == span and "panned" in chart.border_subtitle
        await pilot.press("f")
        assert chart.window(app.store) == (STEPS - span, STEPS)
        await pilot.press("Z", "Z", "Z")
        assert chart.span is None
        before = chart.smoothing
        await pilot.press("s")
        assert chart.smoothing != before and f"smooth {chart.smoothing:g}" in chart.border_subtitle
        await pilot.press("l")
        assert chart.log_y and "log y" in chart.border_subtitle
