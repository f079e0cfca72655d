"""The SDK in a real child process: journal, commands over the socket, pause, stop, permissions."""

import contextlib
import io
import math
import os
import random
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import scripted, wait_for
from neurotop import Monitor, Param
from neurotop.trainer import journal
from neurotop.trainer.guard import Guard
from neurotop.trainer.protocol import (ENV_EVENTS_FD, ENV_RESUME, Coalesced, Command, DecodeCounts, Event, Metric, ParamChange, Status,
                                       decode_lines, encode)


def read_journal(run_dir):
    counts = DecodeCounts()
    return decode_lines((run_dir / journal.JOURNAL).read_bytes().split(b"\n"), counts), counts




def only_run(root):
    runs = journal.list_runs(root)
    return runs[0][0] if runs else None


def last_step(run_dir):
    if not (run_dir / journal.JOURNAL).exists():
        return 0
    msgs, _ = read_journal(run_dir)
    steps = [m.step for m in msgs if isinstance(m, Metric)]
    return max(steps) if steps else 0


def send(run_dir, *cmds):
    info = journal.RunInfo.load(run_dir)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(info.socket)
        for cmd in cmds:
            s.sendall(encode(cmd))


def test_monitor_alone_journals_and_obeys_the_socket(runs):
    child = subprocess.Popen(scripted("--rate", "300"), stdout=subprocess.DEVNULL)
    try:
        run_dir = wait_for(lambda: only_run(runs))
        wait_for(lambda: last_step(run_dir) > 20)
        assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
        sock = journal.RunInfo.load(run_dir).socket
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        send(run_dir, Command(action="set", name="lr", value=2e-3, source="test"),
             Command(action="set", name="lr", value=99.0, source="test"),
             Command(action="set", name="nope", value=1.0, source="test"),
             Command(action="pause", source="test"))
        def three_changes():
            found = [m for m in read_journal(run_dir)[0] if isinstance(m, ParamChange)]
            return found if len(found) == 3 else None

        changes = wait_for(three_changes)
        assert [(c.name, c.new, c.ok) for c in changes] == [("lr", 2e-3, True), ("lr", 99.0, False), ("nope", 1.0, False)]
        assert changes[0].old == 1e-3 and changes[0].source == "test"
        assert "maximum" in changes[1].reason and changes[2].reason == "no such parameter"
        wait_for(lambda: any(isinstance(m, Status) and m.state == "paused" for m in read_journal(run_dir)[0]))
        paused_at = last_step(run_dir)
        time.sleep(0.6)
        assert last_step(run_dir) == paused_at, "steps advanced while paused"
        send(run_dir, Command(action="resume"))
        wait_for(lambda: last_step(run_dir) > paused_at + 5)
        send(run_dir, Command(action="checkpoint"), Command(action="stop"))
        assert child.wait(20) == 0
        msgs, counts = read_journal(run_dir)
        events = [m for m in msgs if isinstance(m, Event)]
        assert [e.kind for e in events] == ["pause", "resume", "checkpoint", "stop"]
        assert os.path.exists(events[2].path) and events[2].source == "attach"
        assert msgs[-1].state == "stopped"
        assert counts.malformed == 0
        assert not os.path.exists(sock), "the socket outlived its run"
    finally:
        child.kill()


def test_disabled_monitor_costs_nothing(tmp_path):
    mon = Monitor(params={"lr": Param(0.1, min=0.0, max=1.0)}, enabled=False, run_dir=tmp_path / "x")
    assert mon.step() and mon.step()
    mon.log(loss=1.0)
    mon.close()
    assert mon.params["lr"] == 0.1 and mon.step_count == 2
    assert not (tmp_path / "x").exists()


def test_in_process_commands_and_callbacks(tmp_path):
    seen = []
    mon = Monitor(params={"lr": Param(1e-3, min=1e-6, max=1.0, log=True),
                          "opt": Param("adam", choices=["adam", "sgd"], on_change=lambda new, old: seen.append((old, new)))},
                  run_dir=tmp_path / "r", name="inproc")
    mon.submit(Command(action="set", name="opt", value="sgd", source="t"))
    mon.submit(Command(action="set", name="lr", value="0.1", source="t"))  # a string is refused, not parsed
    mon.step()
    assert seen == [("adam", "sgd")] and mon.params["opt"] == "sgd" and mon.params["lr"] == 1e-3
    mon.submit(Command(action="stop"))
    assert mon.step() is False
    mon.close()
    msgs, _ = read_journal(tmp_path / "r")
    changes = [m for m in msgs if isinstance(m, ParamChange)]
    assert [c.ok for c in changes] == [True, False]
    assert msgs[-1].state == "stopped"
    assert journal.RunInfo.load(tmp_path / "r").state == "stopped"


def test_failure_is_recorded(runs):
    out = subprocess.run(scripted("--fail-at", "30", "--rate", "1000"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "synthetic failure" in out.stderr
    run_dir = only_run(runs)
    msgs, _ = read_journal(run_dir)
    assert msgs[-1].state == "failed" and "synthetic failure" in msgs[-1].detail
    assert journal.RunInfo.load(run_dir).state == "failed"


def test_stale_socket_is_replaced_and_foreign_files_refused(tmp_path):
    run_dir = journal.make_private_dir(tmp_path / "r")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(run_dir / journal.SOCKET))
    stale.close()  # bound, never listening: what a killed run leaves
    mon = Monitor(run_dir=run_dir, name="s")
    assert mon.info.socket == str(run_dir / journal.SOCKET)
    mon.close()
    run2 = journal.make_private_dir(tmp_path / "r2")
    target = tmp_path / "victim"
    target.write_text("keep me")
    os.symlink(target, run2 / journal.SOCKET)
    mon2 = Monitor(run_dir=run2, name="s2")
    assert mon2.info.socket == ""  # refused to touch it
    mon2.close()
    assert target.read_text() == "keep me"
    msgs, _ = read_journal(run2)
    assert any(isinstance(m, Event) and "control socket unavailable" in m.text for m in msgs)


def test_journal_reader_tolerates_torn_lines(tmp_path):
    path = tmp_path / "journal.jsonl"
    good = encode(Metric(step=1, t=0.0, values={"loss": 1.0}))
    path.write_bytes(good + b'{"type":"mystery"}\n' + b"garbage\n" + good[:10])
    reader = journal.JournalReader(path)
    counts = DecodeCounts()
    msgs = decode_lines(reader.read_lines(), counts)
    assert len(msgs) == 1 and counts.unknown == 1 and counts.malformed == 1
    with open(path, "ab") as f:
        f.write(good[10:])
    assert decode_lines(reader.read_lines(), counts) == [Metric(step=1, t=0.0, values={"loss": 1.0})]
    with open(path, "ab") as f:
        f.write(good[:5])
    assert reader.read_lines() == [] and reader.finish() == good[:5]


# ------------------------------------------------------------------------ the bounded writer
class GatedOS:
    """``os`` for the writer, whose writes to one fd wait at a gate: a writer that has fallen behind."""

    def __init__(self) -> None:
        self.fd = -1
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if fd == self.fd and not self.gate.is_set():
            self.waiting.set()
            self.gate.wait()
        return os.write(fd, data)


def test_a_writer_that_falls_behind_stays_within_its_bound_and_says_what_it_coalesced(tmp_path, monkeypatch):
    import neurotop.trainer.writer as writer_module

    bound = 500
    monkeypatch.setattr(writer_module, "QUEUE_BOUND", bound)
    gated = GatedOS()
    monkeypatch.setattr(writer_module, "os", gated)
    unread, events = os.pipe()  # the UI's end of the events pipe: nobody reads it
    monkeypatch.setenv(ENV_EVENTS_FD, str(events))
    mon = Monitor(run_dir=tmp_path / "r", name="behind")
    gated.fd = mon.writer.journal_fd
    logged, peak = 20_000, 0
    try:
        for step in range(1, logged + 1):
            mon.step()
            mon.log(loss=1.0 / step, **({"val_loss": 2.0 / step} if step % 100 == 0 else {}))
            peak = max(peak, mon.writer.queued)
            if step == 1000:
                wait_for(gated.waiting.is_set)  # the writer is stuck in its first journal write
        assert peak <= bound, f"the queue reached {peak} items"
    finally:
        gated.gate.set()
        mon.close()
        os.close(unread)
    msgs, counts = read_journal(tmp_path / "r")
    assert counts.malformed == 0
    spans = [m for m in msgs if isinstance(m, Coalesced)]
    assert spans, "nothing was coalesced"
    folded = sum(s.points for s in spans)
    assert folded > logged - 2 * bound
    assert msgs[-1].coalesced == folded == mon.writer.coalesced  # the end record keeps the total
    loss_metrics = [m for m in msgs if isinstance(m, Metric) and "loss" in m.values]
    loss_spans = [s.series["loss"] for s in spans if "loss" in s.series]
    # every logged value is either its own point or counted in a span (whose last value also travels)
    assert len(loss_metrics) + sum(s.count for s in loss_spans) - len(loss_spans) == logged
    assert all(s.min <= s.mean <= s.max and s.count >= 1 for s in loss_spans)
    steps = [m.step for m in loss_metrics]
    assert steps == sorted(steps) and steps[-1] == logged, "coalescing reordered the journal"
    assert loss_metrics[-1].values["loss"] == 1.0 / logged


# --------------------------------------------------------------------------- the null monitor
def test_a_disabled_monitor_answers_every_public_call(tmp_path):
    with Monitor(params={"lr": Param(0.1, min=0.0, max=1.0)}, enabled=False, run_dir=tmp_path / "x") as mon:
        mon.submit(Command(action="set", name="lr", value=0.5))
        mon.add_monitoring_time(0.01)
        assert mon.step() and mon.step(10) and mon.step_count == 10
        mon.log(loss=1.0)
        mon.note("nothing")
        mon.emit(Metric(step=1, t=0.0, values={}))
        assert mon.checkpoint() is None and mon.last_checkpoint is None and mon.journal_error == ""
        assert mon.params == {"lr": 0.1} and not mon.paused and not mon.stop_requested and mon.steady
    mon.close()
    assert not (tmp_path / "x").exists()


class ExitRecorder:
    """``atexit`` for the monitor module: which of its callbacks are registered now."""

    def __init__(self) -> None:
        self.callbacks: list = []

    def register(self, f):
        self.callbacks.append(f)

    def unregister(self, f):
        self.callbacks = [c for c in self.callbacks if c != f]


def test_process_hooks_are_installed_once_and_removed_on_close(tmp_path, monkeypatch):
    import neurotop.trainer.monitor as monitor_module

    exits = ExitRecorder()
    monkeypatch.setattr(monitor_module, "atexit", exits)
    original = sys.excepthook
    first = Monitor(run_dir=tmp_path / "a", name="a")
    second = Monitor(run_dir=tmp_path / "b", name="b")  # a bridge's second fit(), before the first ends
    try:
        hook = sys.excepthook
        assert hook is not original and len(exits.callbacks) == 1
        second.close()
        assert sys.excepthook is hook  # the first is still live
    finally:
        first.close()
    assert sys.excepthook is original and exits.callbacks == []
    for name in "cde":  # one Monitor per fit, as the Lightning and HF bridges make them
        mon = Monitor(run_dir=tmp_path / name, name=name)
        assert len(exits.callbacks) == 1
        mon.close()
        assert sys.excepthook is original and exits.callbacks == []
    # and an exception that escapes still marks every live run failed, through the one hook
    mon = Monitor(run_dir=tmp_path / "f", name="f")
    try:
        raise RuntimeError("boom")
    except RuntimeError as err:
        with contextlib.redirect_stderr(io.StringIO()):
            sys.excepthook(RuntimeError, err, err.__traceback__)
    mon.close()
    assert read_journal(tmp_path / "f")[0][-1].state == "failed"
    assert sys.excepthook is original


# ------------------------------------------------------------------------------- the guard
def guard_events(run_dir):
    return [m for m in read_journal(run_dir)[0] if isinstance(m, Event) and m.source == "guard"]


def sgd_losses(n, seed=0):
    """Batch losses as plain SGD on a small classifier gives them near convergence: around 0.02,
    log-normal noise, and every so often one batch 10-50x the rest (0.7886 was the one seen)."""
    rng = random.Random(seed)
    out = []
    for step in range(n):
        loss = 0.02 * math.exp(rng.gauss(0.0, 0.5))
        if step > 100 and rng.random() < 0.03:
            loss = rng.choice([0.7886, 0.35, 0.95, 0.2])
        out.append(loss)
    return out


def log_paced(mon, values, every=50):
    """Log ``values`` a step each, letting the writer catch up now and then (as a real step does)."""
    for i, value in enumerate(values):
        mon.step()
        mon.log(loss=value)
        if i % every == 0:
            wait_for(mon.writer.drained)


def test_a_noisy_sgd_batch_never_trips_the_guard(tmp_path):
    mon = Monitor(run_dir=tmp_path / "r", name="sgd")  # the guard's flagging alone: it pauses nothing
    losses = sgd_losses(3000)
    try:
        log_paced(mon, losses)
        assert math.isfinite(mon.spike_guard.limit)  # it was watching, and saw single batches above 10x
        assert sum(1 for v in losses[100:] if v > 10 * 0.02) > 50
    finally:
        mon.close()
    assert guard_events(tmp_path / "r") == []


def test_a_real_divergence_trips_after_more_than_one_step_and_clears_the_alarm_when_it_passes(tmp_path):
    from neurotop.tui.store import RunStore

    mon = Monitor(run_dir=tmp_path / "r", name="spike")
    try:
        log_paced(mon, sgd_losses(300))
        mon.step()
        mon.log(loss=5.0)
        mon.step()
        mon.log(loss=6.0)
        wait_for(mon.writer.drained)
        assert guard_events(tmp_path / "r") == []  # two steps up: not yet
        mon.step()
        mon.log(loss=7.0)
        log_paced(mon, sgd_losses(20, seed=1))
    finally:
        mon.close()
    warning, recovered = guard_events(tmp_path / "r")
    assert warning.kind == "warning" and "jumped to 7" in warning.text
    assert recovered.kind == "recovered"
    store = RunStore()
    store.ingest(read_journal(tmp_path / "r")[0][:-1])  # all but the end record
    assert store.run.alert == "", "the header still shows an alarm for a spike that passed"
    store = RunStore()
    store.ingest([m for m in read_journal(tmp_path / "r")[0] if not (isinstance(m, Event) and m.kind == "recovered")])
    assert "jumped" in store.run.alert  # shown while it lasts


def test_a_nan_trips_the_guard_at_once():
    guard = Guard(spike=10.0, patience=3)
    assert guard.check(float("nan")) == "diverged"


def diverging_run(tmp_path, on_pause, change_at=150, rolling=False):
    """A run whose loss explodes once ``lr`` exceeds 1: a checkpoint at step 100 (lr 1e-3), lr 10
    asked for at ``change_at``. ``rolling``: a "last good" checkpoint every 100 steps while the run
    is ``steady``, as the demo takes them. ``on_pause(mon)`` answers each pause of the guard, as a
    person would."""
    model = {"level": 0.05}  # what the weights decide: the loss's level
    saved = {}

    def save(path):
        saved.update(model)
        path.write_bytes(b"weights")

    def load(path):
        model.update(saved)

    mon = Monitor(params={"lr": Param(1e-3, min=1e-6, max=100.0, log=True)}, run_dir=tmp_path / "r",
                  name="diverging", guard=True, save=save, load=load)
    pauses = []

    def answer():
        while not mon._closed:
            if mon.paused and len(pauses) < 5:
                pauses.append(mon.step_count)
                on_pause(mon)
                wait_for(lambda: not mon.paused or mon._closed)
            time.sleep(0.01)

    helper = threading.Thread(target=answer, daemon=True)
    helper.start()
    rng = random.Random(3)
    try:
        for step in range(1, 400):
            if not mon.step():
                break
            if step == 100:
                assert mon.checkpoint(source="auto", name="last-good")
            elif rolling and step % 100 == 0 and mon.steady:
                mon.checkpoint(source="auto", name="last-good")
            if step == change_at:
                mon.submit(Command(action="set", name="lr", value=10.0, source="ui"))
            if mon.params["lr"] > 1:
                model["level"] = min(model["level"] * 3, 1e6)
            loss = model["level"] * math.exp(rng.gauss(0.0, 0.2))
            mon.log(loss=loss)
            if step % 50 == 0:
                wait_for(mon.writer.drained)
    finally:
        mon.close()
        helper.join(5)
    return mon, pauses


def roll_back(mon):
    mon.submit(Command(action="rollback", source="ui"))
    mon.submit(Command(action="resume", source="ui"))


def test_roll_back_restores_the_values_at_the_checkpoint_and_says_so(tmp_path):
    mon, pauses = diverging_run(tmp_path, roll_back)
    assert len(pauses) == 1, f"the guard paused the run {len(pauses)} times"
    assert mon.params["lr"] == 1e-3
    msgs = read_journal(tmp_path / "r")[0]
    restore = next(m for m in msgs if isinstance(m, Event) and m.kind == "restore")
    assert "lr 10.0 → 0.001" in restore.text
    back = [m for m in msgs if isinstance(m, ParamChange) and m.ok][-1]
    assert (back.name, back.old, back.new, back.source) == ("lr", 10.0, 1e-3, "ui")
    assert [m.kind for m in guard_events(tmp_path / "r")] == ["diverged"]


def test_a_rolling_checkpoint_is_not_taken_in_the_steps_after_a_change(tmp_path):
    """lr 10 two steps before the demo's "last good" checkpoint: that checkpoint must not be
    taken, or the roll back would bring lr 10 back."""
    mon, pauses = diverging_run(tmp_path, roll_back, change_at=198, rolling=True)
    assert len(pauses) == 1 and mon.params["lr"] == 1e-3
    saved = [m.step for m in read_journal(tmp_path / "r")[0] if isinstance(m, Event) and m.kind == "checkpoint"]
    assert 200 not in saved and 100 in saved


def test_a_run_that_goes_on_far_above_its_earlier_loss_is_warned(tmp_path):
    def go_on(mon):
        mon.submit(Command(action="set", name="lr", value=2.0, source="ui"))  # still too high
        mon.submit(Command(action="resume", source="ui"))

    mon, pauses = diverging_run(tmp_path, go_on)
    events = guard_events(tmp_path / "r")
    assert [e.kind for e in events][:2] == ["diverged", "warning"]
    assert "after resuming" in events[1].text and "before" in events[1].text
    assert events[1].step < pauses[0] + 30  # said soon after the resume, not at the next trip


def test_a_restart_far_above_the_checkpoint_loss_is_warned(tmp_path, monkeypatch):
    first = Monitor(run_dir=tmp_path / "a", name="a", save=lambda p: p.write_bytes(b"w"), load=lambda p: 100)
    log_paced(first, sgd_losses(100))
    ckpt = first.checkpoint()
    first.close()
    monkeypatch.setenv(ENV_RESUME, str(ckpt))
    second = Monitor(run_dir=tmp_path / "b", name="b", save=lambda p: p.write_bytes(b"w"), load=lambda p: 100)
    assert second.step_count == 100
    log_paced(second, [0.8] * 30)
    second.close()
    warning = guard_events(tmp_path / "b")[0]
    assert warning.kind == "warning" and "after the restart" in warning.text


def test_a_checkpoint_saves_the_optimizer_the_script_swapped_in(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(2, 1)
    mon = Monitor(model, run_dir=tmp_path / "r", name="swap", optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    mon.optimizer = torch.optim.Adam(model.parameters(), lr=0.003)  # what the demo does on an optimizer change
    path = mon.checkpoint()
    mon.close()
    state = torch.load(path, weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.003 and "betas" in state["optimizer"]["param_groups"][0]
    off = Monitor(enabled=False)
    off.optimizer = "anything"  # a disabled monitor takes it too, and saves nothing
    assert off.optimizer == "anything" and off.checkpoint() is None
