"""`neurotop run -- CMD` on a script that knows nothing of neurotop (trainer/examples/plain_print.py):
the app fills the loss series from the printed lines, the log pane shows them, and the Params pane
says the run declared no parameters. Also the CLI itself, headless, as a subprocess."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, until
from neurotop.trainer import journal
from neurotop.tui import cli
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link
from neurotop.tui.parse import OutputParser
from neurotop.tui.widgets.log_pane import LogPane
from neurotop.tui.widgets.params_pane import ParamsPane

pytest.importorskip("torch")
pytest.importorskip("sklearn")

pytestmark = pytest.mark.slow

PLAIN = [sys.executable, "-m", "neurotop.trainer.examples.plain_print", "--epochs", "2", "--sleep", "0"]
FIRST_LINE = "Train Epoch: 1 [0/1437 (0%)]\tLoss: "




def run_app(runs, parser, argv=PLAIN):
    """The app as `neurotop run` builds it (see neurotop.tui.cli.launch), with the parser its flags make."""
    run_dir = journal.create_run_dir(runs, "plain_print")
    app = NeurotopApp(lambda store, notify: Link.spawn(argv, run_dir, store, notify, parser=parser),
                      name="plain_print", sample_system=False)
    return app, run_dir


def log_text(app):
    return "\n".join(str(line) for line in app.query_one(LogPane).lines)


async def finished_run(app, pilot):
    store = app.store
    await until(pilot, lambda: store.run.finished)
    await until(pilot, lambda: any(line == "Done." for line in store.output.lines))
    assert store.run.state == "finished" and store.run.exit_code == 0
    assert store.run.hello is None  # no SDK: everything came from the output
    await until(pilot, lambda: "Done." in log_text(app))
    return store


async def test_printed_losses_fill_the_chart(runs):
    app, run_dir = run_app(runs, OutputParser())
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
    assert not (run_dir / journal.JOURNAL).exists()


async def test_no_parse_shows_lines_but_no_series(runs):
    app, _ = run_app(runs, OutputParser(enabled=False))
    async with app.run_test(size=(120, 40)) as pilot:
        store = await finished_run(app, pilot)
        assert store.metrics.series == {}
        assert sum(1 for line in store.output.lines if line.startswith("Train Epoch:")) == 18
        assert FIRST_LINE in log_text(app)
        await until(pilot, lambda: "declared no parameters" in str(app.query_one(ParamsPane).render()))


async def test_metric_regex_reads_only_what_it_names(runs):
    app, _ = run_app(runs, OutputParser(r"Epoch: (?P<epoch>\d+) .*Loss: (?P<train_loss>[-\d.e]+)"))
    async with app.run_test(size=(120, 40)) as pilot:
        store = await finished_run(app, pilot)
        assert set(store.metrics.series) == {"train_loss"}
        assert len(store.metrics.series["train_loss"]) == 18
        assert store.run.epoch == 2
        assert FIRST_LINE in log_text(app)


def test_cli_headless_run(runs):
    env = dict(os.environ, NEUROTOP_RUNS=str(runs))
    out = subprocess.run([sys.executable, "-m", "neurotop.tui.cli", "run", "--headless", "--name", "plain", "--", *PLAIN],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir, info), = journal.list_runs(runs)
    assert run_dir.name.endswith("plain") and info.state == "finished" and info.exit_code == 0
    assert f"run {run_dir.name}: finished" in out.stdout
    text = (run_dir / journal.OUTPUT).read_text()
    assert text.startswith(FIRST_LINE) and text.count("val_loss: ") == 2


def test_cli_refuses_bad_run_arguments(runs, capsys):
    assert cli.main(["run", "--metric-regex", "(", "--", "python", "x.py"]) == 2
    assert "--metric-regex" in capsys.readouterr().err
    assert cli.main(["run", "--metric-regex", r"[\d.]+", "--", "python", "x.py"]) == 2  # no named group
    assert "named groups" in capsys.readouterr().err
    assert cli.main(["run"]) == 2
    assert "give the command after --" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())
