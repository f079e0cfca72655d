"""Overnight safety: the TUI dies (SIGHUP from a dropped terminal, SIGKILL), the run goes on,
and `neurotop attach` rebuilds the history and controls the same run."""

import fcntl
import os
import pty
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

from tests.conftest import SCRIPTED
from tests.conftest import until
from tests.conftest import wait_for
from tests.test_monitor import last_step, read_journal
from neurotop.trainer import journal
from neurotop.trainer.protocol import Command, ParamChange
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link
from neurotop.tui.store import RunStore


def start_tui_in_pty(args, env):
    """`neurotop ...` on a real pseudo-terminal it controls, as over SSH. Returns (pid, master fd)."""
    pid, master = pty.fork()
    if pid == 0:  # the child: exec at once (no Python work after fork in a threaded parent)
        os.execve(sys.executable, [sys.executable, "-m", "neurotop.tui.cli", *args], env)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def drain():
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    return pid, master


def tui_env(runs):
    env = dict(os.environ, NEUROTOP_RUNS=str(runs), TERM="xterm-256color")
    return env


def reap(pid, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not end")


@pytest.mark.parametrize("how", ["hangup", "sigkill"])
async def test_run_survives_its_ui_and_attach_takes_over(runs, how):
    pid, master = start_tui_in_pty(["run", "--", sys.executable, str(SCRIPTED), "--rate", "200"], tui_env(runs))
    try:
        run_dir = wait_for(lambda: journal.list_runs(runs) and journal.list_runs(runs)[0][0])
        wait_for(lambda: last_step(run_dir) > 30)
        child_pid = journal.RunInfo.load(run_dir).pid
        if how == "hangup":
            os.close(master)  # the terminal goes away: the kernel sends SIGHUP to the TUI
            master = None
        else:
            os.kill(pid, signal.SIGKILL)
        status = reap(pid)
        assert os.WIFSIGNALED(status) or os.WIFEXITED(status)
        at_death = last_step(run_dir)
        wait_for(lambda: last_step(run_dir) > at_death + 50)  # training goes on without a UI
        assert journal.pid_alive(child_pid)
    finally:
        if master is not None:
            os.close(master)

    app = NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), sample_system=False)
    async with app.run_test(size=(120, 40)) as pilot:
        store = app.store
        await until(pilot, lambda: store.run.hello is not None and store.run.step > at_death + 50)
        assert len(store.metrics.series["loss"]) >= at_death + 50  # the whole history, not only what came after
        assert store.metrics.series["loss"].first_step == 1
        await pilot.press("plus")
        await until(pilot, lambda: store.params.specs["lr"].value == pytest.approx(2e-3))
        journaled = [m for m in read_journal(run_dir)[0] if isinstance(m, ParamChange)]
        assert journaled[-1].ok and journaled[-1].new == pytest.approx(2e-3) and journaled[-1].source == "ui"
        await pilot.press("q", "s")
        await until(pilot, lambda: store.run.state == "stopped")
    wait_for(lambda: not journal.pid_alive(child_pid))
    assert journal.RunInfo.load(run_dir).state == "stopped"


def test_two_attached_uis_see_the_same_and_commands_apply_in_order(runs):
    child = subprocess.Popen([sys.executable, str(SCRIPTED), "--rate", "200"], stdout=subprocess.DEVNULL,
                             start_new_session=True)
    run_dir = wait_for(lambda: journal.list_runs(runs) and journal.list_runs(runs)[0][0])
    stores = [RunStore(), RunStore()]
    links = [Link.attach(run_dir, s, lambda: None) for s in stores]
    try:
        wait_for(lambda: all(s.run.hello is not None for s in stores))
        for i, value in enumerate([2e-3, 4e-3, 8e-3, 1.6e-2]):
            links[i % 2].send(Command(action="set", name="lr", value=value, source=f"ui{i % 2}"))
            wait_for(lambda: all(s.params.specs["lr"].value == pytest.approx(value) for s in stores))
        history = [[(c.new, c.source) for c in s.events.entries if isinstance(c, ParamChange)] for s in stores]
        assert history[0] == history[1] == [(2e-3, "ui0"), (4e-3, "ui1"), (8e-3, "ui0"), (1.6e-2, "ui1")]
        links[0].send(Command(action="stop"))
        assert child.wait(20) == 0
        wait_for(lambda: all(s.run.finished for s in stores))
        assert stores[0].run.step == stores[1].run.step
        assert len(stores[0].metrics.series["loss"]) == len(stores[1].metrics.series["loss"])
    finally:
        for link in links:
            link.detach()
        child.kill()


def test_attach_to_a_finished_run_is_read_only(runs):
    from tests.journals import demo_messages, write_run

    run_dir = write_run(runs, demo_messages(steps=300))
    store = RunStore()
    link = Link.attach(run_dir, store, lambda: None)
    wait_for(lambda: store.run.finished and store.run.step == 300)
    assert len(store.metrics.series["loss"]) == 300 and store.params.specs["lr"].value == pytest.approx(2e-3)
    with pytest.raises(Exception, match="finished"):
        link.send(Command(action="pause"))
    link.detach()


def test_a_run_whose_process_vanished_is_lost(runs):
    from tests.journals import demo_messages, write_run

    dead = subprocess.Popen(["true"])
    dead.wait()
    msgs = demo_messages(steps=50, finished=False)
    msgs[0].pid = dead.pid
    msgs[0].host = socket.gethostname()
    run_dir = write_run(runs, msgs, state="running", pid=dead.pid)
    assert journal.RunInfo.load(run_dir).effective_state() == "lost"
    store = RunStore()
    link = Link.attach(run_dir, store, lambda: None)
    wait_for(lambda: store.run.state == "lost")
    link.detach()
    out = subprocess.run([sys.executable, "-m", "neurotop.tui.cli", "ls"], capture_output=True, text=True,
                         env=dict(os.environ, NEUROTOP_RUNS=str(runs)))
    assert "lost" in out.stdout and run_dir.name in out.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_another_user_cannot_reach_the_socket(runs):
    child = subprocess.Popen([sys.executable, str(SCRIPTED), "--rate", "100"], stdout=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        run_dir = wait_for(lambda: journal.list_runs(runs) and journal.list_runs(runs)[0][0])
        sock = wait_for(lambda: journal.RunInfo.load(run_dir).socket)
        assert as_another_user(lambda: socket.socket(socket.AF_UNIX).connect(sock)) == "PermissionError"
        assert as_another_user(lambda: os.listdir(run_dir)) == "PermissionError"  # the run directory is owner-only
        assert as_another_user(lambda: None) == "ok"  # the probe itself works
    finally:
        child.kill()


def as_another_user(attempt, uid=65534) -> str:
    """Run ``attempt`` in a forked child that became ``uid``; the name of what it raised, or "ok"."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            attempt()
            result = b"ok"
        except BaseException as err:  # noqa: BLE001 - the child reports whatever it met
            result = type(err).__name__.encode()
        os.write(w, result)
        os._exit(0)
    os.close(w)
    result = os.read(r, 200).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return result
