"""The store's one way in (a handler per message type) and the figures panes read from it; the
restart and the finished run's clock, driven through the real app against real children."""

import re
from typing import get_args

import pytest

from tests.conftest import scripted, until, wait_for
from tests.journals import T0, demo_messages, write_run
from neurotop.trainer import journal, protocol
from neurotop.trainer.protocol import Event, Health, Message, Metric
from neurotop.tui.app import NeurotopApp
from neurotop.tui.cli import after_ui
from neurotop.tui.link import ChildExited, Link
from neurotop.tui.store import RunStore
from neurotop.tui.widgets.activations import ActivationsPane
from neurotop.tui.widgets.header import RunHeader
from neurotop.tui.widgets.params_pane import ParamsPane
from neurotop.tui.widgets.pathway import PathwayPane


def test_every_protocol_message_has_one_handler_and_the_known_kinds_come_from_the_union():
    kinds = get_args(Message)
    assert set(kinds) <= set(RunStore.HANDLERS)
    assert protocol._KNOWN == {kind.__struct_config__.tag for kind in kinds}


def test_versions_never_repeat_across_stores():
    """A pane handed a new store (a restart) must redraw even if both saw as many changes."""
    first, second = RunStore(), RunStore()
    for store in (first, second):
        store.ingest([Metric(step=1, t=T0, values={"loss": 1.0})])
    assert first.metrics.version != second.metrics.version and first.run.version != second.run.version


def test_a_late_exit_of_the_old_process_never_ends_the_new_run():
    """Status "running" after an end is ignored; an exit posted into one store touches no other."""
    old, new = RunStore(), RunStore()
    old.ingest([Metric(step=500, t=T0, values={"loss": 1.0})])
    new.ingest([Metric(step=3, t=T0, values={"loss": 1.0})])
    old.ingest([ChildExited(-15, "was killed by SIGTERM", T0 + 5)])
    assert old.run.state == "failed" and new.run.state == "starting" and new.run.step == 3


# ------------------------------------------------------------------------------ issue 11, defect 5
async def test_restart_makes_a_new_run_with_its_own_id_step_clock_and_speed(runs, capsys):
    run_dir = journal.create_run_dir(runs, "scripted")
    app = NeurotopApp(lambda store, notify: Link.spawn(scripted("--rate", "100", "--steps", "400"), run_dir, store,
                                                       notify), name="scripted", sample_system=False)
    async with app.run_test(size=(120, 40)) as pilot:
        old = app.store
        await until(pilot, lambda: old.run.step > 100)
        await pilot.press("c")
        await until(pilot, lambda: any(isinstance(e, Event) and e.kind == "checkpoint" for e in old.events.entries))
        saved_at = next(e.step for e in old.events.entries if isinstance(e, Event) and e.kind == "checkpoint")
        await until(pilot, lambda: old.run.finished)
        await pilot.press("r")
        await until(pilot, lambda: type(app.screen).__name__ == "ChoiceScreen")
        await pilot.press("y")
        await until(pilot, lambda: app.link.run_dir != run_dir)
        new = app.store
        assert new is not old
        await until(pilot, lambda: new.run.hello is not None and "loss" in new.metrics.series
                    and new.run.steps_per_s > 0, timeout=30)
        assert new.run.hello.run_id == app.link.run_dir.name != run_dir.name
        assert new.metrics.series["loss"].first_step > saved_at  # resumed from the checkpoint, no old points
        assert new.run.started >= old.run.ended  # its own clock
        assert new.run.steps_per_s < 1000  # its own speed (the child runs at ~100 steps/s)
        params = app.query_one(ParamsPane)
        await until(pilot, lambda: f"@ {saved_at:,}" in str(params.content))  # changes made where it resumed
        assert "@ 0" not in str(params.content)
        header = app.query_one(RunHeader)
        await until(pilot, lambda: f"step {new.run.step:,}" in str(header.content))
        await pilot.press("q")
        await until(pilot, lambda: type(app.screen).__name__ == "QuitScreen")
        await pilot.press("d")
    capsys.readouterr()
    after_ui(app, run_dir, app.return_value)
    printed = capsys.readouterr().out
    assert app.link.run_dir.name in printed and run_dir.name not in printed


# ------------------------------------------------------------------------------ issue 11, defect 7
async def test_dead_units_are_one_figure_on_the_dashboard_and_in_pathways(runs):
    """The snapshot has 4 of 16 rows at zero; the health report (a window of snapshots) says 3."""
    messages = demo_messages()
    messages.insert(-1, Health(step=600, layer="enc.relu", units=16, dead=3, saturated=0, mean=0.5, std=0.2))
    run_dir = write_run(runs, messages)
    app = NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), sample_system=False, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.run.finished)
        app.dashboard.repaint_pictures()
        pane = app.query_one(ActivationsPane)
        await until(pilot, lambda: "dead 3/16 (19%)" in str(pane.border_subtitle))
        await pilot.press("v")
        pathway = app.screen.query_one(PathwayPane)
        await until(pilot, lambda: any("dead 3/16 (19%)" in line for line in pathway.lines))


def _megabytes(text: str, after: str) -> int:
    match = re.search(re.escape(after) + r"[^0-9]*(?:[0-9]+%\s+)?([0-9]+) MB", text)
    return int(match.group(1)) if match else -1


async def test_ui_memory_is_one_figure_in_the_header_and_the_diagnostics(runs):
    run_dir = write_run(runs, demo_messages())
    app = NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), sample_system=True, read_only=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: app.store.run.finished)
        header = app.query_one(RunHeader)
        await until(pilot, lambda: _megabytes(str(header.content), "ui ") > 0)
        before = _megabytes(str(header.content), "ui ")
        await pilot.press("d")
        text = lambda: str(app.screen.query_one("#diagnostics-text").content)
        await until(pilot, lambda: "UI memory" in text())
        ballast = b"x" * 300_000_000  # the UI grows while a finished run sits on screen
        await until(pilot, lambda: _megabytes(text(), "UI memory") > before + 250
                    and _megabytes(text(), "UI memory") == _megabytes(str(header.content), "ui "))
        del ballast


async def test_an_attached_run_that_ended_without_an_end_record_shows_its_real_duration(runs):
    """Killed (no end in its journal): the clock stops where ``neurotop ls`` says it ended."""
    run_dir = journal.create_run_dir(runs, "killed")
    store = RunStore()
    Link.spawn(scripted("--rate", "100", "--kill-at", "120"), run_dir, store, lambda: None)
    wait_for(lambda: store.run.finished and journal.RunInfo.load(run_dir).ended is not None)
    info = journal.RunInfo.load(run_dir)
    app = NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), sample_system=False, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.run.finished)
        run = app.store.run
        assert (run.state, run.ended) == (info.state, info.ended)
        assert run.elapsed() == pytest.approx(info.ended - info.started)
