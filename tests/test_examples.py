"""The worked examples (trainer/examples) as real child processes under ``Link.spawn``: what a person
does from the TUI (set a parameter, pause, checkpoint, stop) reaches the script and comes back
acknowledged in the store."""

import subprocess
import sys
import time

import pytest

from tests.conftest import wait_for
from neurotop.trainer import journal
from neurotop.trainer.protocol import Command, Event, ParamChange
from neurotop.tui.link import Link
from neurotop.tui.store import RunStore

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

pytestmark = pytest.mark.slow




def module_argv(name, *args):
    return [sys.executable, "-m", f"neurotop.trainer.examples.{name}", *args]


def spawn(runs, name, *args):
    run_dir = journal.create_run_dir(runs, name)
    store = RunStore(name=name)
    link = Link.spawn(module_argv(name, *args), run_dir, store, lambda: None)
    return link, store


def events(store, kind):
    with store.lock:
        return [e for e in store.events.entries if isinstance(e, Event) and e.kind == kind]


def output_has(store, text):
    with store.lock:
        return any(text in line for line in store.output.lines)


def set_and_wait(link, store, name, value):
    link.send(Command(action="set", name=name, value=value, source="ui"))

    def acknowledged():
        change = store.params.last_change.get(name)
        return change is not None and change.new == value and change
    change = wait_for(acknowledged)
    assert change.ok, change.reason
    assert change.source == "ui" and store.params.specs[name].value == value
    return change


def pause_resume_checkpoint_stop(link, store):
    """The commands every SDK example honours, in the order a person would use them."""
    link.send(Command(action="pause", source="ui"))
    wait_for(lambda: store.run.state == "paused")
    paused_at = store.run.step
    time.sleep(0.5)
    assert store.run.step == paused_at, "steps advanced while paused"
    assert events(store, "pause")[-1].source == "ui"
    link.send(Command(action="resume", source="ui"))
    wait_for(lambda: store.run.state == "running" and store.run.step > paused_at + 3)

    link.send(Command(action="checkpoint", source="ui"))
    ckpt = wait_for(lambda: events(store, "checkpoint"))[-1]
    assert ckpt.source == "ui"
    state = torch.load(ckpt.path, weights_only=True)  # plain tensors and numbers: no pickled objects

    link.send(Command(action="stop", source="ui"))
    wait_for(lambda: store.run.state == "stopped")
    assert link.process.wait(30) == 0
    assert events(store, "stop")[-1].source == "ui"
    assert journal.RunInfo.load(link.run_dir).state == "stopped"
    return state


def test_mlp_digits_obeys_the_ui(runs):
    link, store = spawn(runs, "mlp_digits", "--epochs", "100000", "--probe-every", "10")
    try:
        wait_for(lambda: store.run.hello is not None and store.run.step > 5)
        assert set(store.params.specs) == {"lr", "weight_decay", "dropout_on", "batch_size"}
        assert store.params.specs["lr"].log and store.params.specs["dropout_on"].kind == "bool"
        assert store.params.specs["batch_size"].kind == "int"
        assert {layer.name for layer in store.run.hello.model} >= {"net.0", "net.1", "net.6"}

        set_and_wait(link, store, "lr", 6e-3)
        wait_for(lambda: output_has(store, "lr 0.006 "))  # the script's optimizer has it
        set_and_wait(link, store, "dropout_on", False)
        change = set_and_wait(link, store, "batch_size", 32)
        # an int applied at the next epoch boundary: the script says so in a note
        note = wait_for(lambda: [e for e in events(store, "note") if "batch_size 64 -> 32" in e.text])[0]
        assert note.step >= change.step
        wait_for(lambda: output_has(store, "batch_size 32"))
        # a value outside the declaration is refused with a reason, never applied
        link.send(Command(action="set", name="batch_size", value=0, source="ui"))
        wait_for(lambda: not store.params.last_change["batch_size"].ok)
        assert store.params.specs["batch_size"].value == 32
        wait_for(lambda: {"val_loss", "val_acc", "loss"} <= set(store.metrics.series))
        wait_for(lambda: {"net.1", "net.4"} <= set(store.insights.activations.items))  # ReLUs, chosen by type

        state = pause_resume_checkpoint_stop(link, store)
        assert {"model", "optimizer", "params", "step"} <= set(state)
        assert state["params"]["lr"] == pytest.approx(6e-3) and state["params"]["batch_size"] == 32
        assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(6e-3)
    finally:
        link.stop(grace=5)


def test_conv_autoencoder_obeys_the_ui(runs):
    link, store = spawn(runs, "conv_autoencoder", "--epochs", "100000", "--probe-seconds", "0.2",
                        "--sample-seconds", "0.2")
    try:
        wait_for(lambda: store.run.hello is not None and store.run.step > 5)
        assert set(store.params.specs) == {"lr", "weight_decay", "noise"}
        set_and_wait(link, store, "lr", 1e-3)
        set_and_wait(link, store, "noise", 0.2)
        # probes by name, on a cadence in seconds; image samples of inputs and reconstructions
        wait_for(lambda: {"encoder.act1", "encoder.act2", "decoder.act1"} <= set(store.insights.activations.items))
        wait_for(lambda: {"inputs", "outputs"} <= set(store.insights.samples.items))
        sample = store.insights.samples.items["outputs"]
        assert (sample.height, sample.width) == (8, 8) and sample.count == 8

        state = pause_resume_checkpoint_stop(link, store)  # written by the script's own save()
        assert {"model", "optimizer", "epoch", "step"} <= set(state)
        assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
        assert any(isinstance(e, ParamChange) and e.name == "noise" for e in store.events.entries)
    finally:
        link.stop(grace=5)


@pytest.mark.parametrize("name", ["mlp_digits", "conv_autoencoder"])
def test_steps_limit_finishes_the_run(runs, name):
    out = subprocess.run(module_argv(name, "--steps", "30"), capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    (run_dir, info), = journal.list_runs(runs)
    assert info.state == "finished" and info.step == 30
    assert (run_dir / journal.JOURNAL).stat().st_size > 0


def test_sdk_cost_reports_numbers(tmp_path):
    from neurotop.trainer.examples.sdk_cost import measure

    costs = measure(calls=2000, run_dir=tmp_path / "bench")
    assert set(costs) >= {"log", "step", "step+log"} and all(v > 0 for v in costs.values())


def test_the_demo_runs_until_stopped(runs):
    """Defect 10: the default demo ended after ~85 s (5,000 epochs); now only --epochs/--steps end it."""
    from neurotop.trainer.demo.autoencoder import parse_args, train

    args = parse_args(["--steps", "60", "--batch-size", "720", "--insight-every", "0", "--latent-every", "0"])
    assert args.epochs == 0  # the default: no limit
    mon = train(args)  # two batches an epoch: 60 steps take 30 epochs, far past any fixed count of one
    assert mon.step_count == 60 and mon.epoch >= 29
    assert journal.RunInfo.load(mon.run_dir).state == "finished"
    assert train(parse_args(["--epochs", "2", "--batch-size", "720"])).step_count == 4  # --epochs still limits


def test_no_command_runs_the_demo_and_its_printed_attach_line_works(tmp_path):
    """`neurotop --headless --steps N` is the demo (its options without the word `demo`), started
    from `/` into the per-user runs directory; the `attach with:` line it prints opens the run
    from another directory, in a shell without the virtual environment on its PATH."""
    import os
    import shlex

    from tests.terminal import NEUROTOP, Terminal
    from tests.test_attach import user_env

    env = user_env(tmp_path)
    out = subprocess.run([NEUROTOP, "--headless", "--steps", "40", "--insight-every", "0"], capture_output=True,
                         text=True, timeout=120, cwd="/", env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir, info), = journal.list_runs(tmp_path / ".local" / "state" / "neurotop" / "runs")
    assert info.name == "autoencoder-digits" and info.state == "finished" and info.step == 40
    printed = shlex.split(out.stdout.split("attach with:", 1)[1].splitlines()[0])
    assert printed == [NEUROTOP, "attach", run_dir.name]
    term = Terminal(printed, env, tmp_path)
    try:
        term.wait_text("autoencoder-digits")
        term.wait_text("finished")
    finally:
        term.close()
    assert os.path.exists(out.stdout.split("journal ", 1)[1].splitlines()[0])  # the journal line names a file
