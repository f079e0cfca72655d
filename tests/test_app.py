"""The real app, driven by Pilot, against real child processes (the scripted one: fast, no torch)."""

import os
import socket
import sys
import time

import pytest
from textual.widgets import Footer

from tests.conftest import notifications, scripted, until
from tests.journals import demo_messages, write_run
from neurotop.trainer import journal
from neurotop.trainer.protocol import Command, Event
from neurotop.tui import app as app_module
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link
from neurotop.tui.screens.dashboard import DashboardScreen
from neurotop.tui.screens.help import HelpScreen
from neurotop.tui.screens.pathways import PathwaysScreen
from neurotop.tui.widgets.activations import ActivationsPane
from neurotop.tui.widgets.loss_chart import LossChart
from neurotop.tui.widgets.params_pane import ParamsPane


def spawning_app(runs, *args, name="scripted", argv=None, **kw):
    run_dir = journal.create_run_dir(runs, name)
    argv = argv or scripted(*args)
    app = NeurotopApp(lambda store, notify: Link.spawn(argv, run_dir, store, notify),
                      name=name, sample_system=kw.pop("sample_system", False), **kw)
    return app, run_dir


def attached_app(run_dir, read_only=True):
    return NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), name="fixed",
                       sample_system=False, read_only=read_only)


def key_offer(app, key: str) -> tuple[str, bool] | None:
    """What the footer offers on ``key`` now: (description, enabled), or None when hidden."""
    active = app.screen.active_bindings.get(key)
    return None if active is None else (active.binding.description, active.enabled)


def help_text(app) -> str:
    return str(app.screen.query_one("#help-body Static").render())


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
        assert key_offer(app, "p") == ("Pause", True)
        await pilot.press("p")
        await until(pilot, lambda: store.run.state == "paused")
        await until(pilot, lambda: key_offer(app, "p") == ("Resume", True))  # the footer says what p does now
        paused_at = store.run.step
        await pilot.pause(0.5)  # an interval to watch the step stand still, not a synchronisation
        assert store.run.step <= paused_at + 1
        await pilot.press("p")
        await until(pilot, lambda: store.run.state == "running" and store.run.step > paused_at + 5)
        # the panes drew what the store holds
        activations = app.query_one(ActivationsPane)
        await until(pilot, lambda: activations.current_layer == "enc.relu" and activations.heatmap.grid is not None)
        chart = app.query_one(LossChart)
        await until(pilot, lambda: "loss" in str(chart.border_title) and "step" in chart.render().plain)
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
        await until(pilot, lambda: type(app.screen).__name__ == "PromptScreen")
        inp = app.screen.query_one("#prompt-input")
        inp.value = ""
        await pilot.press(*"sgd", "enter")
        await until(pilot, lambda: store.params.specs["optimizer"].value == "sgd")
        await pilot.press("n")
        await until(pilot, lambda: type(app.screen).__name__ == "PromptScreen")
        await pilot.press(*"loss plateau", "enter")
        await until(pilot, lambda: any(isinstance(e, Event) and e.kind == "note" for e in store.events.entries))
        note = [e for e in store.events.entries if isinstance(e, Event) and e.kind == "note"][0]
        assert note.text == "loss plateau" and note.source == "ui"
        assert any(m.kind == "note" and m.label == "loss plateau" for m in store.metrics.markers)
        app.link.stop()


async def test_child_failure_is_shown_and_the_app_stays(runs):
    app, run_dir = spawning_app(runs, "--rate", "1000", "--fail-at", "40")
    seen = notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.state == "failed")
        assert "synthetic failure" in store.run.detail or store.run.exit_code == 1
        await until(pilot, lambda: any("RuntimeError: synthetic failure" in line for line in store.output.lines))
        await pilot.press("plus")  # a change for a finished run is refused with a reason, not an exception
        await until(pilot, lambda: any("failed: commands no longer reach it" in m for m in seen))
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


# --------------------------------------------------------------------------- keys and help
async def test_help_lists_the_live_bindings_and_closes_with_esc_or_q(runs):
    app = attached_app(write_run(runs, demo_messages(200)))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.run.finished)
        for close in ("escape", "q", "question_mark"):
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            text = help_text(app)
            assert text.split("Previous layer")[0].splitlines()[-1].split() == ["["]
            assert text.split("Next layer")[0].splitlines()[-1].split() == ["]"]
            assert "z  " in text and "Zoom in" in text and "Pan left" in text and "Edit" in text
            # the run has finished: what cannot reach it is listed under why
            assert "Focus Next" not in text  # Textual's own keys are not neurotop's to explain
            unavailable = text.split("Not now: the run has finished: commands no longer reach it")[1]
            assert "Checkpoint" in unavailable and "Pause" in unavailable and "Zoom in" not in unavailable
            await pilot.press(close)
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            assert app.is_running and app._exception is None


async def test_help_on_the_pathways_screen_lists_its_keys(runs):
    app = attached_app(write_run(runs, demo_messages(200)))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.store.run.finished)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, PathwaysScreen))
        pathways = app.screen
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = help_text(app)
        assert "Sort units" in text and "Grad/update" in text and "Compare" in text and "Back" in text
        assert "Zoom in" not in text and "Step param" not in text  # the dashboard's panes are not here
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is pathways)
        assert app.is_running and app._exception is None


async def test_a_keymap_rebinds_pane_and_run_keys(runs, tmp_path, monkeypatch):
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('"chart.zoom_in" = "i"\n"params.increase" = "k"\n"run.pause" = "space"\n')
    monkeypatch.setattr(app_module, "KEYMAP_FILE", keymap)
    app, _ = spawning_app(runs, "--rate", "200")
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.hello is not None and store.run.step > 20)
        await until(pilot, lambda: key_offer(app, "space") == ("Pause", True))
        assert key_offer(app, "p") is None and key_offer(app, "z") is None
        await pilot.press("k")  # steps the selected parameter, as + did
        await until(pilot, lambda: store.params.specs["lr"].value == pytest.approx(2e-3))
        chart = app.query_one(LossChart)
        await pilot.press("i")
        assert chart.span is not None
        await pilot.press("space")
        await until(pilot, lambda: store.run.state == "paused")
        await until(pilot, lambda: key_offer(app, "space") == ("Resume", True))  # the footer says what p does now
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = {line.split("  ")[-1].strip(): line for line in help_text(app).splitlines() if line.strip()}
        assert rows["Zoom in"].split()[0] == "i" and rows["Resume"].split()[0] == "space"
        await pilot.press("escape")
        await pilot.press("space")
        await until(pilot, lambda: store.run.state == "running")
        app.link.stop()


async def test_a_plain_command_offers_pause_and_note_but_not_checkpoint(runs):
    """Under its supervisor a plain command pauses for real (SIGSTOP) and takes notes; a checkpoint
    needs the SDK, so its key is dimmed and says why."""
    plain = [sys.executable, "-c", "import time\nfor i in range(3000): print(f'step {i} loss {1/(i+1):.4f}', flush=True); time.sleep(0.02)"]
    run_dir = journal.create_run_dir(runs, "plain")
    app = NeurotopApp(lambda store, notify: Link.supervise(plain, run_dir, store, notify), name="plain",
                      sample_system=False)
    seen = notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.run.hello is not None and app.store.run.step > 5)
        assert key_offer(app, "c") == ("Checkpoint", False)  # dimmed in the footer
        await pilot.press("c")
        await until(pilot, lambda: any(m.startswith("Checkpoint: ") and "without the neurotop SDK" in m for m in seen))
        assert key_offer(app, "p") == ("Pause", True) and key_offer(app, "n") == ("Note", True)
        await pilot.press("p")
        await until(pilot, lambda: app.store.run.state == "paused")
        await until(pilot, lambda: key_offer(app, "p") == ("Resume", True))
        await pilot.press("p")
        await until(pilot, lambda: app.store.run.state == "running")
        await pilot.press("q")
        await until(pilot, lambda: type(app.screen).__name__ == "QuitScreen")
        await pilot.press("s")
        await until(pilot, lambda: app.store.run.finished, timeout=30)
    assert journal.RunInfo.load(run_dir).state == "stopped"


async def test_an_attached_finished_run_offers_no_run_controls(runs):
    app = attached_app(write_run(runs, demo_messages(100)))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.store.run.finished and app.store.params.specs)
        await until(pilot, lambda: key_offer(app, "p") == ("Pause", False))
        assert key_offer(app, "c") == ("Checkpoint", False) and key_offer(app, "e") == ("Edit", False)
        assert key_offer(app, "r") == ("Restart", False)  # this journal does not name its command
        assert app.why_unavailable("restart") == "its command is unknown"


async def test_theme_key_says_which_theme_is_on(runs):
    app = attached_app(write_run(runs, demo_messages(50)))
    seen = notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        first = app.theme
        await pilot.press("t")
        await until(pilot, lambda: app.theme != first and f"theme: {app.theme}" in seen)


# ------------------------------------------------------------------------------ quitting
@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_q_quits_at_once_when_the_run_has_ended(runs, key):
    app, run_dir = spawning_app(runs, "--rate", "500", "--steps", "30")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.run.state == "finished")
        await pilot.press(key)
        await until(pilot, lambda: not app.is_running, timeout=10)
    assert app.return_value is None and app._exception is None


# ------------------------------------------------------------------------- sends, screens
async def test_a_socket_that_never_answers_does_not_hold_up_a_key(runs):
    """Attached to a live run that stopped reading its control socket (it accepts nothing more and
    its connection's buffer is full): the write waits out its timeout in the send worker, never
    on the key press, and the failure is shown."""
    run_dir = write_run(runs, demo_messages(100, finished=False), state="running", pid=os.getpid())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(journal.socket_path_for(run_dir)))
    listener.listen(0)  # never accepted: one connection waits in the backlog, the next is refused
    app = attached_app(run_dir, read_only=False)
    seen = notifications(app)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.store.run.hello is not None and app.store.run.step == 100)
            await until(pilot, lambda: key_offer(app, "p") == ("Pause", True))
            await pilot.press("p")  # connects and is written: the run just never reads it
            await until(pilot, lambda: not app.sending and app.link._control is not None)
            connection = app.link._control
            connection.setblocking(False)
            with pytest.raises(BlockingIOError):
                while True:
                    connection.send(b"\n" * 65536)
            connection.settimeout(2.0)
            started = time.monotonic()
            await pilot.press("c")
            await pilot.press("l")
            pressed = time.monotonic() - started
            print(f"two key presses took {pressed * 1000:.0f} ms while a send waited on a dead socket")
            assert pressed < 1.0 and app.sending  # the checkpoint is still waiting
            assert app.query_one(LossChart).log_y
            await until(pilot, lambda: any("control socket" in m for m in seen), timeout=10)
            print(f"the failure was shown after {time.monotonic() - started:.1f} s")
            assert time.monotonic() - started > 1.5 and not app.sending and app.is_running
    finally:
        listener.close()


async def test_the_dashboard_stops_painting_under_the_pathways_screen(runs, monkeypatch):
    painted = {"dashboard": 0, "pathways": 0}

    def counting(screen, original):
        def repaint(self):
            painted[screen] += 1
            original(self)
        return repaint

    monkeypatch.setattr(DashboardScreen, "repaint_text", counting("dashboard", DashboardScreen.repaint_text))
    monkeypatch.setattr(PathwaysScreen, "repaint_text", counting("pathways", PathwaysScreen.repaint_text))
    app = attached_app(write_run(runs, demo_messages(50)))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: painted["dashboard"] >= 2)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, PathwaysScreen))
        covered = painted["dashboard"]
        await until(pilot, lambda: painted["pathways"] >= 8)  # two seconds of its 4 Hz clock
        assert painted["dashboard"] == covered
        await pilot.press("escape")
        await until(pilot, lambda: painted["dashboard"] >= covered + 2)


async def test_the_pathways_footer_keeps_help_and_quit_at_80_columns(runs):
    app = attached_app(write_run(runs, demo_messages(50)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, PathwaysScreen))
        footer = app.screen.query_one(Footer)
        await until(pilot, lambda: any(key.key == "q" for key in footer.query("FooterKey")))
        for key in footer.query("FooterKey"):
            assert key.region.right <= 80, f"{key.key} is cut at {key.region}"


async def test_an_update_that_arrives_while_the_app_closes_is_ignored(runs):
    """The link's reader can post one last update after the screens are gone (seen under load in
    the 100 MB line test): it must not raise ScreenStackError on the way out."""
    app = attached_app(write_run(runs, demo_messages(100)))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.store.run.finished)
    assert not app.screen_stack
    app._controls_seen = None  # what the footer offers looks changed: the update would refresh it
    app.on_run_updated(app_module.RunUpdated())
