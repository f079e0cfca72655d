"""`neurotop run -- CMD` on a script that knows nothing of neurotop (trainer/examples/plain_print.py):
its supervisor parses the printed lines into the journal, the app charts them, the log pane shows
them, the Params pane says the run declared no parameters, and pause, notes and stop are real.
Also the CLI itself, headless and on a pty, as a subprocess."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, until, wait_for
from tests.terminal import NEUROTOP, Terminal
from tests.test_monitor import read_journal
from neurotop.trainer import journal
from neurotop.trainer.protocol import Event, Metric
from neurotop.tui import cli
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link
from neurotop.tui.supervisor import PLAIN_CONTROLS
from neurotop.tui.widgets.log_pane import LogPane
from neurotop.tui.widgets.params_pane import ParamsPane

pytest.importorskip("torch")
pytest.importorskip("sklearn")

pytestmark = pytest.mark.slow

PLAIN = [sys.executable, "-m", "neurotop.trainer.examples.plain_print", "--epochs", "2", "--sleep", "0"]
SLOW_PLAIN = [sys.executable, "-m", "neurotop.trainer.examples.plain_print", "--epochs", "1000", "--sleep", "0.02"]
FIRST_LINE = "Train Epoch: 1 [0/1437 (0%)]\tLoss: "


def run_app(runs, options=(), argv=PLAIN):
    """The app as `neurotop run` builds it (see neurotop.tui.cli.main), with its supervisor's options."""
    run_dir = journal.create_run_dir(runs, "plain_print")
    app = NeurotopApp(lambda store, notify: Link.supervise(argv, run_dir, store, notify, options=list(options)),
                      name="plain_print", sample_system=False)
    return app, run_dir


def log_text(app):
    return "\n".join(str(line) for line in app.query_one(LogPane).lines)


def journaled(run_dir, kind):
    return [m for m in read_journal(run_dir)[0] if isinstance(m, kind)]


async def finished_run(app, pilot):
    store = app.store
    await until(pilot, lambda: store.run.finished)
    await until(pilot, lambda: any(line == "Done." for line in store.output.lines))
    assert store.run.state == "finished" and store.run.exit_code == 0
    assert store.run.hello.controls == PLAIN_CONTROLS and not store.run.hello.params  # no SDK: its supervisor said hello
    await until(pilot, lambda: "Done." in log_text(app))
    return store


async def test_printed_losses_fill_the_chart(runs):
    app, run_dir = run_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        store = await finished_run(app, pilot)
        assert {"loss", "val_loss", "val_acc"} <= set(store.metrics.series)
        loss, val = store.metrics.series["loss"], store.metrics.series["val_loss"]
        assert len(loss) == 18 and len(val) == 2  # 9 Train lines an epoch, one validation line
        # steps come from "[640/1437 (45%)]" and the epoch; a validation line (no step of its own)
        # goes at the last step printed before it, not at its line number
        assert loss.first_step == 0 and loss.last_step == 1437 + 1280
        assert val.last_step == loss.last_step
        assert FIRST_LINE in log_text(app)
        await until(pilot, lambda: "declared no parameters" in str(app.query_one(ParamsPane).render()))
        await pilot.press("plus")  # nothing to step: a notice, not an exception
        await pilot.pause(0.2)
        assert app.is_running
    assert (run_dir / journal.OUTPUT).read_text().startswith(FIRST_LINE)
    metrics = journaled(run_dir, Metric)  # the journal holds what was parsed: attach rebuilds it
    assert sum(1 for m in metrics if "loss" in m.values) == 18
    assert journal.RunInfo.load(run_dir).state == "finished"


async def test_a_plain_run_restarts_under_a_new_supervisor(runs):
    app, first = run_app(runs, ["--metric-regex", r"Loss: (?P<train_loss>[-\d.e]+)"])
    async with app.run_test(size=(120, 40)) as pilot:
        await finished_run(app, pilot)
        await pilot.press("r")
        await until(pilot, lambda: type(app.screen).__name__ == "ChoiceScreen")
        await pilot.press("y")
        await until(pilot, lambda: app.link.run_dir != first)
        await until(pilot, lambda: app.store.run.state == "finished" and app.store.run.exit_code == 0)
    second = app.link.run_dir
    assert journal.RunInfo.load(second).supervisor != journal.RunInfo.load(first).supervisor
    assert {name for m in journaled(second, Metric) for name in m.values} == {"train_loss"}  # same options


async def test_no_parse_shows_lines_but_no_series(runs):
    app, run_dir = run_app(runs, ["--no-parse"])
    async with app.run_test(size=(120, 40)) as pilot:
        store = await finished_run(app, pilot)
        assert store.metrics.series == {}
        assert sum(1 for line in store.output.lines if line.startswith("Train Epoch:")) == 18
        assert FIRST_LINE in log_text(app)
        await until(pilot, lambda: "declared no parameters" in str(app.query_one(ParamsPane).render()))
    assert journaled(run_dir, Metric) == []


async def test_metric_regex_reads_only_what_it_names(runs):
    app, _ = run_app(runs, ["--metric-regex", r"Epoch: (?P<epoch>\d+) .*Loss: (?P<train_loss>[-\d.e]+)"])
    async with app.run_test(size=(120, 40)) as pilot:
        store = await finished_run(app, pilot)
        assert set(store.metrics.series) == {"train_loss"}
        assert len(store.metrics.series["train_loss"]) == 18
        assert store.run.epoch == 2
        assert FIRST_LINE in log_text(app)


def process_state(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().split(b") ", 1)[1][:1].decode()


async def test_plain_run_pauses_for_real_and_stops_as_stopped(runs):
    """Defect 3: `p` on a command without the SDK stops its process group (SIGSTOP) and says so;
    `n` is journaled; `q` then `s` ends it as stopped, promptly."""
    app, run_dir = run_app(runs, argv=SLOW_PLAIN)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.step > 0)
        child = store.run.hello.pid
        socket_path = journal.RunInfo.load(run_dir).socket  # the supervisor's, owner-only
        assert os.stat(socket_path).st_mode & 0o777 == 0o600
        await pilot.press("p")
        await until(pilot, lambda: store.run.state == "paused")
        assert process_state(child) == "T"  # stopped by SIGSTOP, not "pausing at the next step"
        await pilot.press("p")
        await until(pilot, lambda: store.run.state == "running" and process_state(child) != "T")
        await pilot.press("n")
        await pilot.pause(0.2)
        await pilot.press(*"lr looks high", "enter")
        await until(pilot, lambda: any(isinstance(e, Event) and e.kind == "note" for e in store.events.entries))
        await pilot.press("q", "s")
        await until(pilot, lambda: store.run.state == "stopped", timeout=15)
    wait_for(lambda: not journal.pid_alive(child), timeout=10)
    info = journal.RunInfo.load(run_dir)
    assert info.state == "stopped" and info.notes == 1
    kinds = [e.kind for e in journaled(run_dir, Event)]
    assert kinds == ["pause", "resume", "note", "stop"]


def test_q_s_on_a_plain_run_is_stopped_and_neurotop_exits_0(runs, tmp_path):
    """The issue's acceptance walk on a pty: a plain script, a note typed during the run, `q` → `s`:
    neurotop exits 0, `neurotop ls` lists it stopped, its journal holds the metrics and the note."""
    env = dict(os.environ, TERM="xterm-256color")
    term = Terminal([NEUROTOP, "run", "--", *SLOW_PLAIN], env, tmp_path)
    try:
        run_dir = wait_for(lambda: journal.list_runs(runs) and journal.list_runs(runs)[0][0])
        wait_for(lambda: (run_dir / journal.JOURNAL).exists() and journaled(run_dir, Metric), timeout=60)
        term.wait_text("Train Epoch")
        term.press("n")
        term.wait_text("Note at step")  # the prompt (the footer says "Note" all along)
        term.press("seen at step one\r")
        wait_for(lambda: any(e.kind == "note" for e in journaled(run_dir, Event)))
        term.press("q")
        term.wait_text("cleanly")
        term.press("s")
        assert term.wait_exit(timeout=20) == 0
    finally:
        term.close()
    assert f"run {run_dir.name}: stopped" in term.text
    out = subprocess.run([NEUROTOP, "ls"], capture_output=True, text=True, env=env, cwd="/", check=True)
    line, = [ln for ln in out.stdout.splitlines() if ln.startswith(run_dir.name)]
    assert line.split()[1] == "stopped"
    assert any("loss" in m.values for m in journaled(run_dir, Metric))
    notes = [e for e in journaled(run_dir, Event) if e.kind == "note"]
    assert [n.text for n in notes] == ["seen at step one"]


def test_cli_headless_run(runs, tmp_path):
    """Headless, a plain run is journaled, named after its module, and attachable."""
    env = dict(os.environ, NEUROTOP_RUNS=str(runs))
    out = subprocess.run([NEUROTOP, "run", "--headless", "--", *PLAIN],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir, info), = journal.list_runs(runs)
    assert run_dir.name.endswith("-plain_print") and info.name == "plain_print"  # not "python"
    assert info.state == "finished" and info.exit_code == 0
    assert f"run {run_dir.name}: finished" in out.stdout
    text = (run_dir / journal.OUTPUT).read_text()
    assert text.startswith(FIRST_LINE) and text.count("val_loss: ") == 2
    assert f"journal {run_dir / journal.JOURNAL}" in out.stdout and len(journaled(run_dir, Metric)) == 20


def test_run_names_say_the_script():
    assert cli.run_name(["python", "-m", "neurotop.trainer.examples.plain_print", "--epochs", "2"]) == "plain_print"
    assert cli.run_name(["python3", "scripts/train.py", "--lr", "0.1"]) == "train"
    assert cli.run_name(["torchrun", "--nproc-per-node", "2", "train.py"]) == "train"
    assert cli.run_name(["./train.sh"]) == "train.sh"


def test_cli_refuses_bad_run_arguments(runs, capsys):
    assert cli.main(["run", "--metric-regex", "(", "--", "python", "x.py"]) == 2
    assert "--metric-regex" in capsys.readouterr().err
    assert cli.main(["run", "--metric-regex", r"[\d.]+", "--", "python", "x.py"]) == 2  # no named group
    assert "named groups" in capsys.readouterr().err
    assert cli.main(["run"]) == 2
    assert "give the command after --" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())


def test_a_command_that_cannot_start_is_a_failed_run(runs):
    env = dict(os.environ, NEUROTOP_RUNS=str(runs))
    out = subprocess.run([NEUROTOP, "run", "--headless", "--", "/nonexistent/train.py"], capture_output=True,
                         text=True, timeout=60, cwd="/", env=env, check=False)
    assert out.returncode == 1
    (run_dir, info), = journal.list_runs(runs)
    assert info.state == "failed" and info.exit_code == 127 and "could not start" in out.stdout
    assert "cannot start '/nonexistent/train.py'" in (run_dir / journal.OUTPUT).read_text()


def test_the_supervisor_stays_light():
    """It outlives the UI on a GPU box all night: no Textual, no plotting, no numpy in it."""
    code = ("import sys, neurotop.tui.supervisor\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'plotext', 'rich', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


STUBBORN = [sys.executable, "-u", "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "for i in range(10**9):\n"
            "    print(f'step {i} loss {1 / (i + 1):.4f}')\n"
            "    time.sleep(0.02)\n"]


def test_a_paused_command_that_ignores_sigterm_is_still_stopped(runs):
    """Stop wakes a paused group, and a command deaf to SIGTERM is killed after the grace."""
    from neurotop.trainer.protocol import Command
    from neurotop.tui.store import RunStore
    from neurotop.tui.supervisor import STOP_GRACE

    run_dir = journal.create_run_dir(runs, "stubborn")
    store = RunStore(name="stubborn")
    link = Link.supervise(STUBBORN, run_dir, store, lambda: None)
    try:
        wait_for(lambda: store.run.step > 3)
        link.send(Command(action="pause", source="ui"))
        wait_for(lambda: store.run.state == "paused")
        link.stop(grace=STOP_GRACE + 5)
        assert store.run.state == "stopped" and store.run.exit_code == -9
        assert store.run.detail == "asked to stop; it was killed by SIGKILL"
    finally:
        link.detach()
