"""Issue 6, "nothing lost, nothing crashes": provoke each fault and check what a person sees.

Children die (exception, SIGKILL, never a hello, gone at once); a child writes garbage, weird
messages, a 100 MB line or a million metrics into the real app through a real pipe; commands are
out of range, of the wrong type, aimed at a finished run, or pressed 30 times; the journal's disk
fills; the terminal is resized or colourless; and payloads try to smuggle code in.

A test for an open product bug is ``xfail(strict=True)`` with the bug in its reason: the fix makes
it pass, and the owner removes the mark. (Divergence guard, restart and diagnostics: elsewhere.)
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import pickle
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from textual.geometry import Size
from textual.widgets import Footer

from tests.conftest import ROOT, notifications, repainted, scripted, until, wait_for
from tests.test_fuzz import corpus_params
from tests.test_monitor import only_run, read_journal
from neurotop import Monitor
from neurotop.trainer import journal
from neurotop.trainer.protocol import Command, DecodeCounts, Event, Metric, ParamChange, Status, decode_lines, encode
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link, LinkClosed
from neurotop.tui.store import RunStore
from neurotop.tui.widgets.activations import ActivationsPane
from neurotop.tui.widgets.header import RunHeader
from neurotop.tui.widgets.heatmap import ASCII_RAMP
from neurotop.tui.widgets.log_pane import LogPane
from neurotop.tui.widgets.loss_chart import LossChart
from neurotop.tui.widgets.params_pane import ParamsPane
from neurotop.tui.widgets.reconstructions import ReconstructionsPane

MISBEHAVING = ROOT / "tests" / "children" / "misbehaving.py"
PANES = ("loss", "activations", "reconstructions", "system", "params", "log")


# ----------------------------------------------------------------------------------- helpers
def misbehaving(*args: str) -> list[str]:
    """The argv of the child that writes raw bytes to the events pipe (no SDK)."""
    return [sys.executable, str(MISBEHAVING), *args]


def app_for(runs: Path, argv: list[str], name: str = "faults", **kw) -> tuple[NeurotopApp, Path]:
    run_dir = journal.create_run_dir(runs, name)
    app = NeurotopApp(lambda store, notify: Link.spawn(argv, run_dir, store, notify), name=name,
                      sample_system=False, **kw)
    return app, run_dir


def healthy(app: NeurotopApp) -> bool:
    return app.is_running and app._exception is None




def done_seen(store) -> bool:
    with store.lock:
        return any(isinstance(e, Event) and e.text == "done" for e in store.events.entries)


def text_of(widget) -> str:
    return str(widget.render())


def lines_file(tmp_path: Path, lines: list[bytes], name: str = "lines.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def kill(app: NeurotopApp) -> None:
    if app.link is not None and app.link.process is not None and app.link.process.poll() is None:
        app.link.process.kill()


class PeakRSS:
    """This process's peak resident memory since creation: the kernel's high-water mark, reset
    through ``/proc/self/clear_refs`` (else sampled on every ``sample()``)."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.kernel = True
        except OSError:
            self.kernel = False

    def growth(self) -> int:
        self.peak = max(self.peak, self.proc.memory_info().rss)
        if self.kernel:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
        return self.peak - self.base


# ------------------------------------------------------------------------ the child dies
async def test_a_python_exception_shows_its_traceback_and_the_ui_stays(runs):
    app, run_dir = app_for(runs, scripted("--rate", "1000", "--fail-at", "40"))
    seen = notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.state == "failed" and store.run.exit_code is not None)
        assert store.run.exit_code == 1 and "RuntimeError: synthetic failure at step 40" in store.run.detail
        log = app.query_one(LogPane)
        await until(pilot, lambda: any("Traceback (most recent call last)" in line for line in log.lines))
        assert any("RuntimeError: synthetic failure at step 40" in line for line in log.lines)
        header = app.query_one(RunHeader)
        await until(pilot, lambda: "failed" in text_of(header) and "synthetic failure" in text_of(header))
        await pilot.press("plus")  # the params are still listed; the command cannot go anywhere
        await until(pilot, lambda: any("failed: commands no longer reach it" in m for m in seen))
        await pilot.press("l", "z", "right", "left_square_bracket")
        assert healthy(app) and store.run.state == "failed"  # open on the last state
    info = journal.RunInfo.load(run_dir)
    assert info.state == "failed" and info.exit_code == 1


async def test_sigkill_is_named_and_recorded(runs):
    app, run_dir = app_for(runs, scripted("--rate", "200", "--kill-at", "100"))
    seen = notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.state == "failed")
        assert store.run.exit_code == -signal.SIGKILL and store.run.detail == "was killed by SIGKILL"
        await until(pilot, lambda: "killed by SIGKILL" in text_of(app.query_one(RunHeader)))
        await until(pilot, lambda: any("the run was killed by SIGKILL" in m for m in seen))
        assert healthy(app)
        # what reached the journal before the kill reached the UI too (the child's last
        # unflushed tenth of a second dies with it: that is what SIGKILL means)
        journaled = [m.step for m in read_journal(run_dir)[0] if isinstance(m, Metric) and "loss" in m.values]
        assert journaled == list(range(1, len(journaled) + 1)) and len(journaled) > 0
        assert len(store.metrics.series["loss"]) == len(journaled) and store.run.step == journaled[-1]
    info = journal.RunInfo.load(run_dir)  # the Monitor never wrote an end: the link did
    assert info.state == "failed" and info.exit_code == -signal.SIGKILL and info.ended is not None


async def test_a_child_that_never_says_hello(runs):
    app, _ = app_for(runs, [sys.executable, "-c", "import time; time.sleep(120)"])
    seen = notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        params = app.query_one(ParamsPane)
        await until(pilot, lambda: "declared no parameters" in text_of(params))
        assert store.run.hello is None and store.run.state in ("running", "starting")
        await pilot.press("plus")
        await until(pilot, lambda: any("no parameter to change" in m for m in seen))
        await pilot.press("p", "e", "z")
        assert healthy(app) and store.run.state in ("running", "starting")
        kill(app)
        await until(pilot, lambda: store.run.state == "failed")
        assert store.run.detail == "was killed by SIGKILL"


async def test_a_child_that_exits_at_once(runs):
    app, run_dir = app_for(runs, [sys.executable, "-c", "pass"])
    seen = notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.finished)
        assert store.run.state == "finished" and store.run.exit_code == 0 and store.run.detail == "exited with code 0"
        await until(pilot, lambda: "declared no parameters" in text_of(app.query_one(ParamsPane)))
        with pytest.raises(LinkClosed, match="finished"):
            app.link.send(Command(action="pause", source="test"))
        await pilot.press("p")  # a command to a finished run: the reason is shown, nothing raises
        await until(pilot, lambda: any("the run has finished: commands no longer reach it" in m for m in seen))
        assert healthy(app)
    assert journal.RunInfo.load(run_dir).state == "finished"


# --------------------------------------------------------- bad events through a real pipe
def hello_line(params: bool = True) -> bytes:
    spec = (',"params":[{"name":"lr","kind":"float","value":0.001,"default":0.001,"min":1e-06,"max":1.0,'
            '"log":true}]') if params else ""
    return b'{"type":"hello","version":1,"run_id":"raw","name":"raw","pid":1,"host":"h","started":0.0%s}' % spec.encode()


def metric_line(step: int, loss: float = 0.5) -> bytes:
    return b'{"type":"metric","step":%d,"t":0.0,"values":{"loss":%r}}' % (step, loss)


class Boom:
    """A pickle that would run a command if anything ever unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


async def test_bad_lines_on_the_pipe_are_counted_and_skipped(runs, tmp_path):
    marker = tmp_path / "pwned"
    malformed = [
        b"this is not json", b'{"type": "metric", "step": 1', b"[1, 2, 3]", b"42", b'"metric"', b"null",
        b'{"type": "metric", "step": "one", "t": 0, "values": {}}',  # a field of the wrong type
        b'{"type": "metric", "t": 0, "values": {"loss": 1}}',  # a field missing
        b'{"type": "metric", "step": 3, "t": 0, "values": [1, 2]}',  # values not a dict
        b'{"type": "activations", "step": 1}', b'{"type": 7}', b'{"no_type": true}',
        b'{"type":"metric","step":2,"t":0,"values":{"loss":NaN}}',
        b'{"type":"metric","step":2,"t":0,"values":{"loss":Infinity}}',
        b'{"type":"metric","step":2,"t":0,"values":{"loss":-Infinity}}',
        b'{"type":"metric","step":2,"t":0,"values":{"lo\xff\xfess":1.0}}',  # invalid UTF-8 inside a string
        b"\xff\xfe\xfd\x80 \xc3\x28", b"\x00\x00\x00\x1b[2J",
    ]
    pickled = pickle.dumps(Boom(marker), protocol=0)
    malformed += [line for line in pickled.split(b"\n") if line.strip()]
    unknown = [b'{"type": "telemetry", "x": 1}', b'{"type": "hello2"}', b'{"type": "metric2", "step": 1}']
    good = [metric_line(step, 1.0 / step) for step in range(1, 41)]
    mixed = [hello_line()]  # good and bad lines interleaved, so every batch the reader gets is mixed
    for pair in itertools.zip_longest(good, malformed + unknown + [b"", b"   ", b"\t"]):
        mixed.extend(line for line in pair if line is not None)
    stdout = tmp_path / "stdout.bin"
    stdout.write_bytes(b"plain line\nbad utf-8 \xff\xfe here\n[/] not [b]markup\n")
    app, _ = app_for(runs, misbehaving("--stdout", str(stdout), "--file", str(lines_file(tmp_path, mixed)),
                                       "--done", "--torn", "--linger", "0"))
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: done_seen(store) and store.run.finished and store.intake.counts.torn == 1)
        assert store.intake.counts.malformed == len(malformed), store.intake.counts.last_error
        assert store.intake.counts.unknown == len(unknown)
        assert len(store.metrics.series["loss"]) == len(good) and store.run.step == len(good)
        assert store.run.hello is not None and store.run.state == "finished"
        header = app.query_one(RunHeader)
        await until(pilot, lambda: f"{len(malformed) + len(unknown)} bad lines" in text_of(header))
        log = app.query_one(LogPane)
        await until(pilot, lambda: any("bad utf-8 \ufffd" in line for line in log.lines))
        assert any(line == "[/] not [b]markup" for line in log.lines)
        await pilot.press("l")
        assert app.query_one(LossChart).log_y and healthy(app)
    assert not marker.exists()


async def test_events_after_the_final_status(runs, tmp_path):
    lines = [hello_line(), *(metric_line(s) for s in range(1, 11)),
             b'{"type":"status","step":10,"t":1.0,"state":"finished","exit_code":0}',
             *(metric_line(s) for s in range(11, 21)),
             b'{"type":"status","step":20,"t":2.0,"state":"running"}',  # a late heartbeat
             b'{"type":"event","step":20,"t":2.0,"kind":"warning","text":"still here"}',
             b'{"type":"param","step":20,"t":2.0,"name":"lr","new":0.5,"old":0.001,"source":"ghost"}',
             b'{"type":"mystery"}']
    app, _ = app_for(runs, misbehaving("--file", str(lines_file(tmp_path, lines)), "--done", "--linger", "30"))
    seen = notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: done_seen(store))
        assert store.run.state == "finished" and store.run.exit_code == 0  # a heartbeat never revives it
        assert store.intake.counts.unknown == 1 and store.intake.counts.malformed == 0
        await pilot.press("p")
        await until(pilot, lambda: any("commands no longer reach it" in m for m in seen))
        await pilot.press("plus", "l")
        assert healthy(app) and store.run.state == "finished"
        kill(app)


async def test_a_child_that_stops_listening(runs):
    app, _ = app_for(runs, misbehaving("--close-control", "--linger", "30"))
    seen = notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: any("wrote everything" in line for line in store.output.lines))
        with pytest.raises(LinkClosed, match="not listening"):
            app.link.send(Command(action="pause", source="test"))
        app.send(Command(action="pause", source="ui"))  # no hello, so no p key: the send worker's failure
        await until(pilot, lambda: any("the run is not listening" in m for m in seen))
        assert healthy(app) and store.run.state == "running"
        kill(app)


async def test_a_100mb_line_is_dropped_without_buffering_it(runs):
    limit = 64 << 20  # well under the line: a reader that holds it whole (twice, while it grows) is over
    app, _ = app_for(runs, misbehaving("--huge", "100", "--done", "--linger", "60"))
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        peak = PeakRSS()
        await until(pilot, lambda: done_seen(store) or peak.growth() > limit, timeout=300)
        grew = peak.growth()
        kill(app)
        print(f"reading a 100 MB line grew the UI by {grew / 2**20:.1f} MB")
        assert grew < limit, f"the UI grew by {grew >> 20} MB reading one line"
        assert store.intake.counts.malformed >= 1  # dropped, and counted
        assert all(len(name) < 1 << 20 for name in store.metrics.series)
        assert healthy(app)


def test_a_100mb_line_in_a_journal_is_dropped_on_attach(runs):
    from tests.journals import demo_messages, write_run

    msgs = demo_messages(steps=20)
    run_dir = write_run(runs, msgs[:-1], state="finished")  # the end record comes after the long line
    with open(run_dir / journal.JOURNAL, "ab") as f:
        f.write(b'{"type":"metric","step":21,"t":0.0,"values":{"')
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
        f.write(b'":1.0}}\n' + encode(msgs[-1]))
    store = RunStore()
    peak = PeakRSS()
    link = Link.attach(run_dir, store, lambda: None)
    try:
        wait_for(lambda: store.run.finished or peak.growth() > 64 << 20, timeout=120)
        grew = peak.growth()
        assert grew < 64 << 20, f"attaching grew the UI by {grew >> 20} MB for one line"
        assert store.run.finished and store.run.step == 20 and store.intake.counts.malformed >= 1
    finally:
        link.detach()


async def test_a_flood_of_a_million_metrics(runs):
    app, _ = app_for(runs, misbehaving("--flood", "1000000", "--done", "--linger", "60"))
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        peak = PeakRSS()
        chart = app.query_one(LossChart)
        await until(pilot, lambda: store.run.step > 0)
        await pilot.press("l")  # keys are handled while the flood is read
        assert chart.log_y
        await until(pilot, lambda: done_seen(store), timeout=300)
        loss = store.metrics.series["loss"]
        assert len(loss) == 1_000_000 and store.run.step == 1_000_000
        assert loss.nbytes < 8 << 20, loss.nbytes  # the buckets' bound, not the stream's length
        assert store.intake.counts.malformed == store.intake.counts.torn == 0
        await pilot.press("l")
        assert not chart.log_y
        assert peak.growth() < 300 << 20
        assert healthy(app)
        kill(app)


@pytest.mark.parametrize("data", ["no-metrics-yet", "only-values-at-or-below-zero"])
async def test_log_y_without_positive_data(runs, tmp_path, data):
    lines = [] if data == "no-metrics-yet" else [metric_line(s, -float(s)) for s in range(1, 30)] + [metric_line(30, 0.0)]
    app, _ = app_for(runs, misbehaving("--file", str(lines_file(tmp_path, lines)), "--done", "--linger", "30"))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: done_seen(app.store))
        try:
            await pilot.press("l")
            await repainted(pilot, app.query_one(LossChart))
            assert healthy(app) and app.query_one(LossChart).log_y
        finally:
            kill(app)


@pytest.mark.parametrize("path", corpus_params("app"))
async def test_corpus_through_the_real_app(runs, path):
    """Every input that ever broke something, written by a real child into the real app: it stays up,
    every line is used (nothing of a batch is lost), and `+` still works where params were declared."""
    app, _ = app_for(runs, misbehaving("--file", str(path), "--done", "--linger", "30"), pictures_hz=5.0)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        try:
            await until(pilot, lambda: done_seen(store), timeout=20)  # else the reader died
        finally:
            kill(app)
        app.dashboard.repaint_all()  # both paint clocks tick over what arrived
        await repainted(pilot, *(app.query_one(f"#{p}") for p in PANES))
        if store.params.specs:
            await pilot.press("plus")
            await until(pilot, lambda: app.query_one(ParamsPane).idle and not app.sending)  # the debounced send went out
        assert healthy(app)
        assert "could not store a batch" not in store.intake.counts.last_error  # the link's safety net lost one
        texts = [m.group(1) for m in re.finditer(rb'"kind":"note","text":"([^"]*)"', path.read_bytes())]
        with store.lock:
            got = {e.text for e in store.events.entries if isinstance(e, Event)}
        assert {t.decode() for t in texts} <= got


async def test_a_plain_script_printing_a_huge_step(runs):
    code = ("import time; print('step 99999999999999999999999 loss 0.5', flush=True); time.sleep(0.6); "
            "print('after', flush=True); time.sleep(30)")
    app, _ = app_for(runs, [sys.executable, "-c", code])
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        try:
            await until(pilot, lambda: any(line == "after" for line in store.output.lines), timeout=10)
        finally:
            kill(app)
        assert healthy(app)


# ---------------------------------------------------------------- bad commands and values
def changes_in(run_dir: Path, name: str | None = None) -> list[ParamChange]:
    if not (run_dir / journal.JOURNAL).exists():
        return []
    return [m for m in read_journal(run_dir)[0] if isinstance(m, ParamChange) and (name is None or m.name == name)]


async def test_bad_values_are_refused_with_a_reason(runs):
    app, run_dir = app_for(runs, scripted("--rate", "300"))
    seen = notifications(app)
    bad = [("lr", 50.0, "above the maximum"), ("lr", 0.0, "below the minimum"), ("lr", -1e-3, "below the minimum"),
           ("lr", "0.01", "must be a number, not str"), ("lr", True, "must be a number, not bool"),
           ("lr", float("nan"), "must be a number"),  # JSON has no NaN: it travels as null
           ("lr", float("inf"), "must be a number"), ("weight_decay", 0.5, "above the maximum"),
           ("optimizer", "rmsprop", "must be one of"), ("optimizer", 3, "must be one of"),
           ("momentum", 0.9, "no such parameter"), ("", 1.0, "no such parameter")]
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.hello is not None)
        for name, value, _ in bad:
            app.send(Command(action="set", name=name, value=value, source="ui"))
        await until(pilot, lambda: len([e for e in store.events.entries if isinstance(e, ParamChange)]) == len(bad))
        got = [e for e in store.events.entries if isinstance(e, ParamChange)]
        for change, (name, _, why) in zip(got, bad, strict=True):
            assert change.name == name and not change.ok and why in change.reason, change
        assert {n: s.value for n, s in store.params.specs.items()} == {"lr": 1e-3, "weight_decay": 0.0, "optimizer": "adam"}
        await until(pilot, lambda: sum("refused" in m for m in seen) == len(bad))
        await until(pilot, lambda: "refused" in text_of(app.query_one(ParamsPane)))
        journaled = changes_in(run_dir)
        assert [(c.name, c.ok, c.source) for c in journaled] == [(n, False, "ui") for n, _, _ in bad]
        assert healthy(app)
        app.link.stop()


async def test_a_burst_of_keys_is_debounced_and_applied_in_order(runs):
    app, run_dir = app_for(runs, scripted("--rate", "100"))
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: "lr" in text_of(app.query_one(ParamsPane)))
        sent: list[Command] = []
        original = app.link.send
        app.link.send = lambda cmd: (sent.append(cmd), original(cmd))[1]
        await pilot.press(*["plus"] * 30)
        await until(pilot, lambda: app.query_one(ParamsPane).idle and not app.sending)
        assert 1 <= len(sent) < 30 and all(c.action == "set" and c.name == "lr" for c in sent)
        await until(pilot, lambda: len(changes_in(run_dir, "lr")) == len(sent))
        journaled = changes_in(run_dir, "lr")
        assert [c.new for c in journaled] == [c.value for c in sent]  # each one, in the order sent
        assert all(c.ok and c.source == "ui" for c in journaled)
        await until(pilot, lambda: store.params.specs["lr"].value == sent[-1].value)  # the latest request wins
        assert healthy(app)
        app.link.stop()


async def test_keys_pressed_before_the_ack_build_on_what_was_asked(runs):
    app, run_dir = app_for(runs, scripted("--rate", "0.2"))  # a step boundary every 5 s: acks are slow
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: "lr" in text_of(app.query_one(ParamsPane)))
        try:
            await pilot.press("plus", "plus", "plus")
            await until(pilot, lambda: app.query_one(ParamsPane).idle and not app.sending)
            if store.params.specs["lr"].value != pytest.approx(1e-3):
                pytest.skip("the child acknowledged before the second burst")
            await pilot.press("plus", "plus", "plus")
            await until(pilot, lambda: app.query_one(ParamsPane).idle and not app.sending)
            # however the presses were split into sends (a loaded machine may send a burst in two),
            # the last acknowledged value is six doublings: each press built on what was asked
            await until(pilot, lambda: store.params.specs["lr"].value == pytest.approx(1e-3 * 2**6))
            changes = [e.new for e in store.events.entries if isinstance(e, ParamChange)]
            assert changes == sorted(changes) and all(c.ok for c in store.events.entries if isinstance(c, ParamChange))
        finally:
            kill(app)


# ------------------------------------------------------------------------- the disk fills
class FlakyOS:
    """``os`` for neurotop.trainer.monitor, whose ``write`` to one fd writes part of a buffer and then fails
    with ENOSPC while ``full`` is set, as a filling disk does."""

    def __init__(self, code: int = errno.ENOSPC) -> None:
        self.code = code
        self.fd: int | None = None
        self.full = False
        self.refused = 0
        self._partial_done = False

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if fd == self.fd and self.full:
            if not self._partial_done and len(data) > 1:
                self._partial_done = True
                return os.write(fd, bytes(data[: len(data) // 2 + 1]))  # a line cut in two
            self.refused += 1
            raise OSError(self.code, os.strerror(self.code))
        return os.write(fd, data)


def check_journal(run_dir: Path, last_step: int) -> list:
    data = (run_dir / journal.JOURNAL).read_bytes()
    assert data.endswith(b"\n"), "the journal ends in a torn line"
    counts = DecodeCounts()
    msgs = decode_lines(data.split(b"\n"), counts)
    assert counts.malformed == counts.unknown == 0, counts.last_error
    assert [m.step for m in msgs if isinstance(m, Metric)] == list(range(1, last_step + 1))
    assert isinstance(msgs[-1], Status) and msgs[-1].state == "finished"
    return msgs


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS],
                         ids=["disk-full", "made-unwritable", "read-only-remount"])
def test_a_full_disk_costs_no_step_and_tears_no_line(tmp_path, monkeypatch, capsys, code):
    """As root, permission bits do not stop writes: an unwritable run directory is provoked at the
    write itself (EACCES, EROFS), the same way the filling disk is."""
    import neurotop.trainer.writer as writer_module

    flaky = FlakyOS(code)
    monkeypatch.setattr(writer_module, "os", flaky)
    mon = Monitor(run_dir=tmp_path / "run", name="full")
    flaky.fd = mon.writer.journal_fd
    for step in range(1, 601):
        assert mon.step()
        mon.log(loss=1.0 / step)
        if step == 150:
            wait_for(mon.writer.drained)
            flaky.full = True
        if step in (200, 300, 400):  # the writer keeps trying while the disk is full
            tried = flaky.refused
            wait_for(lambda: flaky.refused > tried)
            assert mon.journal_error and mon.step_count == step
        if step == 450:
            flaky.full = False
    mon.close()
    err = capsys.readouterr().err
    assert err.count("cannot write the journal") == 1 and os.strerror(code) in err
    assert "journal writable again" in err
    check_journal(tmp_path / "run", 600)


def test_a_really_full_filesystem(tmp_path, capsys):
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        mon = Monitor(run_dir=mnt / "run", name="tmpfs")
        filler = mnt / "filler"
        with open(filler, "wb", buffering=0) as f:
            for size in (65536, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError as err:
                    assert err.errno == errno.ENOSPC
        step = 0
        while not mon.journal_error:  # log until the writer meets the full disk
            step += 1
            assert mon.step()
            mon.log(loss=1.0 / step)
            if step % 100 == 0:
                time.sleep(0.05)
            assert step < 200_000, "the filesystem never filled"
        for _ in range(300):  # training goes on, a while, on a full disk
            step += 1
            assert mon.step()
            mon.log(loss=1.0 / step)
        filler.unlink()
        for _ in range(100):
            step += 1
            assert mon.step()
            mon.log(loss=1.0 / step)
        mon.close()
        err = capsys.readouterr().err
        assert "cannot write the journal" in err and "No space left on device" in err
        assert "journal writable again" in err
        check_journal(mnt / "run", step)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ------------------------------------------------------------------------------- terminals
def layout_problems(app: NeurotopApp) -> list[str]:
    """Visible panes (and the header and footer) that overlap each other or leave the screen."""
    widgets = [app.query_one(RunHeader), *(app.query_one(f"#{p}") for p in PANES), app.query_one(Footer)]
    regions = {(w.id or type(w).__name__): w.region for w in widgets if w.display and w.region.area}
    screen = app.screen.region
    problems = [f"{a} {ra} overlaps {b} {rb}" for (a, ra), (b, rb) in itertools.combinations(regions.items(), 2)
                if ra.overlaps(rb)]
    problems += [f"{name} {r} leaves the {screen.width}x{screen.height} screen" for name, r in regions.items()
                 if not screen.contains_region(r)]
    return problems


async def resize(pilot, width: int, height: int) -> None:
    await pilot.resize_terminal(width, height)
    await until(pilot, lambda: pilot.app.size == Size(width, height))
    pilot.app.dashboard.repaint_all()
    await repainted(pilot, pilot.app.query_one(RunHeader), pilot.app.query_one(Footer))  # laid out at the new size


async def test_resizing_while_it_trains(runs):
    app, _ = app_for(runs, scripted("--rate", "300"), pictures_hz=4.0)
    async with app.run_test(size=(80, 24)) as pilot:
        store = app.store
        chart = app.query_one(LossChart)
        await until(pilot, lambda: store.run.step > 30 and store.insights.activations.items)
        for width, height in [(80, 24), (250, 80), (40, 12), (120, 40)]:
            await resize(pilot, width, height)
            if (width, height) != (40, 12):  # below the smallest supported size: see the next test
                assert layout_problems(app) == []
            await pilot.press("l")  # still answers keys (log-y on, then off: log-y through a
            assert chart.log_y      # resize has a test of its own, two below)
            await pilot.press("l")
            assert not chart.log_y
            step = store.run.step
            await until(pilot, lambda: store.run.step > step)  # and still follows the run
        assert healthy(app)
        app.link.stop()


async def test_a_tiny_terminal_keeps_panes_apart(runs):
    app, _ = app_for(runs, scripted("--rate", "300"))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.run.step > 10)
        await resize(pilot, 40, 12)
        try:
            assert layout_problems(app) == []
        finally:
            kill(app)


@pytest.mark.parametrize("then", ["resize", "theme"])
async def test_log_y_survives_a_resize_or_a_theme_switch(runs, then):
    app, _ = app_for(runs, scripted("--rate", "300"))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.run.step > 30)
        try:
            chart = app.query_one(LossChart)
            await pilot.press("l")
            await repainted(pilot, chart)
            if then == "resize":
                await resize(pilot, 100, 30)
            else:
                await pilot.press("t")
            await repainted(pilot, chart)
            assert healthy(app) and chart.log_y
        finally:
            kill(app)


async def test_no_color_draws_the_heatmaps_in_ascii(runs, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app, _ = app_for(runs, scripted("--rate", "400"), pictures_hz=4.0)
    assert app.no_color
    async with app.run_test(size=(120, 40)) as pilot:
        heatmap = app.query_one(ActivationsPane).heatmap
        recon = app.query_one(ReconstructionsPane)
        await until(pilot, lambda: heatmap.grid is not None and recon.images)
        # the picture panes appear with their first data: wait until they are laid out, then drawn
        await until(pilot, lambda: heatmap.size.height > 0 and recon.size.height > 0)
        await repainted(pilot, heatmap, recon)
        picture = [heatmap.render_line(y).text for y in range(heatmap.size.height)]
        picture = [line for line in picture if "dead:" not in line]  # the legend under it
        assert picture and set("".join(picture)) <= set(ASCII_RAMP)
        assert set("".join(picture)) - {" "}, "an empty picture"
        images = "".join(recon.render_line(y).text for y in range(recon.size.height))
        assert "▀" not in images and "▄" not in images and set(images) & set(ASCII_RAMP[1:])
        assert healthy(app)
        app.link.stop()


# -------------------------------------------------------------------------------- security
def start_child(runs: Path, *args: str) -> tuple[subprocess.Popen, Path, str]:
    child = subprocess.Popen(scripted("--rate", "200", *args), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    run_dir = wait_for(lambda: only_run(runs))
    sock = wait_for(lambda: journal.RunInfo.load(run_dir).socket)
    return child, run_dir, sock


def raw_send(sock_path: str, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock_path)
        s.sendall(data)


def ignored_lines(run_dir: Path) -> int:
    """Bad command lines the child counted (its warnings say how many, and from where)."""
    total = 0
    for m in read_journal(run_dir)[0]:
        if isinstance(m, Event) and m.kind == "warning":
            found = re.match(r"ignored (\d+) bad command line\(s\) from attach", m.text)
            total += int(found.group(1)) if found else 0
    return total


def test_code_smuggled_into_commands_is_never_run(runs, tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    child, run_dir, sock = start_child(runs)
    try:
        lines = [
            {"type": "command", "action": "set", "name": "lr", "value": code},
            {"type": "command", "action": "set", "name": "optimizer", "value": code},
            {"type": "command", "action": "set", "name": "__class__", "value": 1},
            {"type": "command", "action": "note", "text": f"$(touch {marker}) `touch {marker}`"},
        ]
        smuggled = [b'{"type":"command","action":"%s"}' % code.encode(),  # not an action
                    b'{"type":"command","action":"set","name":"lr","value":{"__reduce__":"os.system"}}',
                    b'{"type":"command","action":"set","name":"lr","value":["touch", "x"]}']
        raw_send(sock, b"".join(json.dumps(d).encode() + b"\n" for d in lines) + b"\n".join(smuggled) + b"\n")
        wait_for(lambda: len(changes_in(run_dir)) == 3 and ignored_lines(run_dir) == len(smuggled))
        lr, opt, dunder = changes_in(run_dir)
        assert not lr.ok and lr.new == code and "must be a number, not str" in lr.reason
        assert not opt.ok and "must be one of" in opt.reason
        assert not dunder.ok and dunder.reason == "no such parameter"
        wait_for(lambda: any(isinstance(m, Event) and m.kind == "note" for m in read_journal(run_dir)[0]))
        note = [m for m in read_journal(run_dir)[0] if isinstance(m, Event) and m.kind == "note"][0]
        assert note.text == lines[3]["text"]  # journaled as text, nothing more
        raw_send(sock, encode(Command(action="stop")))
        assert child.wait(30) == 0
        assert not marker.exists()
    finally:
        child.kill()


def test_a_pickle_on_the_control_socket_is_ignored_and_counted(runs, tmp_path):
    marker = tmp_path / "pwned"
    child, run_dir, sock = start_child(runs)
    try:
        payloads = [pickle.dumps(Boom(marker), protocol=p) for p in (0, 2, pickle.HIGHEST_PROTOCOL)]
        after = encode(Command(action="set", name="lr", value=2e-3, source="after-pickle"))
        raw_send(sock, b"\n".join(payloads) + b"\n" + after)
        wait_for(lambda: any(c.source == "after-pickle" for c in changes_in(run_dir)))
        assert changes_in(run_dir)[-1].ok  # the good line after the garbage still counts
        wait_for(lambda: ignored_lines(run_dir) >= len(payloads))
        raw_send(sock, encode(Command(action="stop")))
        assert child.wait(30) == 0
        assert not marker.exists()
    finally:
        child.kill()


def test_a_command_line_whose_type_is_an_object(runs):
    child, run_dir, sock = start_child(runs)
    try:
        after = encode(Command(action="set", name="lr", value=4e-3, source="after-odd-type"))
        raw_send(sock, b'{"type":{"action":"stop"}}\n' + after)
        wait_for(lambda: any(c.source == "after-odd-type" for c in changes_in(run_dir)), timeout=10)
        assert ignored_lines(run_dir) == 1
    finally:
        child.kill()


def test_a_runaway_line_on_the_socket_is_dropped_not_buffered(runs):
    child, run_dir, sock = start_child(runs)
    try:
        after = encode(Command(action="set", name="lr", value=4e-3, source="after-runaway"))
        raw_send(sock, b"x" * (3 << 20) + b"\n" + after)  # 3 MB with no newline, then a command
        wait_for(lambda: any(c.source == "after-runaway" and c.ok for c in changes_in(run_dir)))
        assert ignored_lines(run_dir) >= 1
        assert psutil.Process(child.pid).memory_info().rss < 200 << 20
        raw_send(sock, encode(Command(action="stop")))
        assert child.wait(30) == 0
    finally:
        child.kill()


def test_the_socket_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        mon = Monitor(run_dir=tmp_path / "run", name="umask")
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "run").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(mon.info.socket).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / "run" / journal.JOURNAL).st_mode) == 0o600
    finally:
        mon.close()


@pytest.mark.parametrize("what", ["live-socket", "fifo", "directory", "file"])
def test_what_sits_at_the_socket_path_is_never_taken_over(tmp_path, what):
    run_dir = journal.make_private_dir(tmp_path / "run")
    path = run_dir / journal.SOCKET
    other = None
    if what == "live-socket":  # another run's socket, listening: not stale
        other = socket.socket(socket.AF_UNIX)
        other.bind(str(path))
        other.listen(1)
    elif what == "fifo":
        os.mkfifo(path)
    elif what == "directory":
        path.mkdir()
        (path / "keep").write_text("keep me")
    else:
        path.write_text("keep me")
    before = os.lstat(path)
    mon = Monitor(run_dir=run_dir, name="squat")
    mon.close()
    assert mon.info.socket == ""
    msgs, _ = read_journal(run_dir)
    assert any(isinstance(m, Event) and "control socket unavailable" in m.text for m in msgs)
    after = os.lstat(path)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    if other is not None:  # the other run still gets its connections
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
        conn, _ = other.accept()
        conn.close()
        other.close()
    elif what == "directory":
        assert (path / "keep").read_text() == "keep me"
    elif what == "file":
        assert path.read_text() == "keep me"


def test_a_symlink_planted_for_long_socket_paths_is_not_followed(tmp_path, monkeypatch):
    runtime = tmp_path / "xdg"
    runtime.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    os.chmod(victim, 0o755)
    (runtime / f"neurotop-{os.getuid()}").symlink_to(victim)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    long_dir = tmp_path / ("r" * 120)  # too long for AF_UNIX: the fallback directory is used
    mon = Monitor(run_dir=long_dir, name="long")
    mon.close()
    assert mon.info.socket == ""  # refused (this part holds today)
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o755, "the symlink's target was chmodded"
