"""The real app, driven by Pilot, against real child processes (the scripted one: fast, no torch)."""


import pytest

from tests.conftest import scripted, until
from neurotop.trainer import journal
from neurotop.trainer.protocol import Command, Event
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link
from neurotop.tui.widgets.activations import ActivationsPane
from neurotop.tui.widgets.loss_chart import LossChart
from neurotop.tui.widgets.params_pane import ParamsPane


def spawning_app(runs, *args, name="scripted", **kw):
    run_dir = journal.create_run_dir(runs, name)
    app = NeurotopApp(lambda store, notify: Link.spawn(scripted(*args), run_dir, store, notify),
                      name=name, sample_system=kw.pop("sample_system", False), **kw)
    return app, run_dir




async def test_panes_fill_and_keys_reach_the_child(runs):
    app, run_dir = spawning_app(runs, "--rate", "400")
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.hello is not None and store.run.step > 20)
        assert store.run.name == "scripted" and set(store.params.specs) == {"lr", "weight_decay", "optimizer"}
        assert "loss" in store.metrics.series
        await until(pilot, lambda: "lr" in str(app.query_one(ParamsPane).render()))
        # + doubles the selected (first) parameter: the child applies and acknowledges it
        await pilot.press("plus")
        await until(pilot, lambda: store.params.specs["lr"].value == pytest.approx(2e-3))
        change = store.params.last_change["lr"]
        assert change.ok and change.source == "ui" and change.old == pytest.approx(1e-3)
        assert any(m.kind == "param" and m.step == change.step for m in store.metrics.markers)
        # p pauses: the step stops advancing; p again resumes
        await pilot.press("p")
        await until(pilot, lambda: store.run.state == "paused")
        paused_at = store.run.step
        await pilot.pause(0.5)
        assert store.run.step <= paused_at + 1
        await pilot.press("p")
        await until(pilot, lambda: store.run.state == "running" and store.run.step > paused_at + 5)
        # the panes drew what the store holds
        await until(pilot, lambda: app.query_one(ActivationsPane).layer is not None)
        chart = app.query_one(LossChart)
        chart.refresh_from(store)
        assert chart._seen is not None
        await pilot.press("q")
        await pilot.press("s")  # stop the run cleanly
        await until(pilot, lambda: store.run.state == "stopped", timeout=20)
    assert app.return_value == "stop"


async def test_refused_value_is_shown_not_applied(runs):
    app, run_dir = spawning_app(runs, "--rate", "300")
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.hello is not None)
        app.send(Command(action="set", name="lr", value=50.0, source="ui"))
        await until(pilot, lambda: "lr" in store.params.last_change)
        change = store.params.last_change["lr"]
        assert not change.ok and "maximum" in change.reason
        assert store.params.specs["lr"].value == pytest.approx(1e-3)
        await until(pilot, lambda: "refused" in str(app.query_one(ParamsPane).render()))
        app.link.stop()


async def test_typed_value_and_note(runs):
    app, run_dir = spawning_app(runs, "--rate", "300")
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.hello is not None)
        await pilot.press("down", "down", "e")  # the choice parameter
        await pilot.pause(0.2)
        inp = app.screen.query_one("#prompt-input")
        inp.value = ""
        await pilot.press(*"sgd", "enter")
        await until(pilot, lambda: store.params.specs["optimizer"].value == "sgd")
        await pilot.press("n")
        await pilot.pause(0.2)
        await pilot.press(*"loss plateau", "enter")
        await until(pilot, lambda: any(isinstance(e, Event) and e.kind == "note" for e in store.events.entries))
        note = [e for e in store.events.entries if isinstance(e, Event) and e.kind == "note"][0]
        assert note.text == "loss plateau" and note.source == "ui"
        assert any(m.kind == "note" and m.label == "loss plateau" for m in store.metrics.markers)
        app.link.stop()


async def test_child_failure_is_shown_and_the_app_stays(runs):
    app, run_dir = spawning_app(runs, "--rate", "1000", "--fail-at", "40")
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.state == "failed")
        assert "synthetic failure" in store.run.detail or store.run.exit_code == 1
        await until(pilot, lambda: any("RuntimeError: synthetic failure" in line for line in store.output.lines))
        await pilot.press("plus")  # a command to a finished run is refused with a reason, not an exception
        await pilot.pause(0.3)
        assert app.is_running


async def test_command_that_does_not_exist(runs):
    run_dir = journal.create_run_dir(runs, "nothing")
    app = NeurotopApp(lambda store, notify: Link.spawn(["/nonexistent/train.py"], run_dir, store, notify),
                      sample_system=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.store.run.state == "failed")
        assert "could not start" in app.store.run.detail
        await until(pilot, lambda: any("cannot start" in line for line in app.store.output.lines))


async def test_guard_pauses_a_diverging_run_and_offers_a_way_out(runs):
    app, run_dir = spawning_app(runs, "--rate", "300", "--nan-at", "60", "--guard")
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.state == "paused" and store.run.diverged is not None)
        assert "not finite" in store.run.diverged.text and "not finite" in store.run.alert
        assert any(m.kind == "diverged" for m in store.metrics.markers)
        paused_at = store.run.step
        await until(pilot, lambda: type(app.screen).__name__ == "ChoiceScreen")
        await pilot.press("h")  # halve the learning rate, then resume
        await until(pilot, lambda: store.params.specs["lr"].value == pytest.approx(5e-4))
        await until(pilot, lambda: store.run.state == "running" and store.run.step > paused_at + 20)
        assert store.run.alert == ""
        assert len(store.metrics.series["loss"]) > 0 and store.metrics.series["loss"].nonfinite >= 1


async def test_restart_after_a_failure_starts_a_new_run_with_current_values(runs):
    app, run_dir = spawning_app(runs, "--rate", "100", "--fail-at", "300")
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.hello is not None)
        app.send(Command(action="set", name="lr", value=4e-3, source="ui"))
        await until(pilot, lambda: store.params.specs["lr"].value == pytest.approx(4e-3))
        await until(pilot, lambda: store.run.state == "failed")
        await pilot.press("r")
        await until(pilot, lambda: type(app.screen).__name__ == "ChoiceScreen")
        await pilot.press("y")
        await until(pilot, lambda: app.link.run_dir != run_dir and app.store.run.hello is not None)
        store = app.store  # the new run's
        await until(pilot, lambda: store.params.specs["lr"].value == pytest.approx(4e-3))
        assert store.params.last_change["lr"].source == "restart"
        await until(pilot, lambda: store.run.state == "failed")  # the same command fails the same way
        assert len(journal.list_runs(runs)) == 2
