"""Overnight safety: the TUI dies (SIGHUP from a dropped terminal, SIGKILL), the run goes on,
and `neurotop attach` rebuilds the history and controls the same run."""

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SCRIPTED
from tests.conftest import until
from tests.conftest import wait_for
from tests.terminal import NEUROTOP, Terminal
from tests.test_monitor import last_step, read_journal
from neurotop.trainer import journal
from neurotop.trainer.protocol import Command, ParamChange
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link
from neurotop.tui.store import RunStore


def tui_env(runs):
    env = dict(os.environ, NEUROTOP_RUNS=str(runs), TERM="xterm-256color")
    return env


@pytest.mark.parametrize("how", ["hangup", "sigkill"])
async def test_run_survives_its_ui_and_attach_takes_over(runs, how):
    term = Terminal([NEUROTOP, "run", "--", sys.executable, str(SCRIPTED), "--rate", "200"], tui_env(runs), os.getcwd())
    try:
        run_dir = wait_for(lambda: journal.list_runs(runs) and journal.list_runs(runs)[0][0])
        wait_for(lambda: last_step(run_dir) > 30)
        child_pid = journal.RunInfo.load(run_dir).pid
        if how == "hangup":
            term.hang_up()
        else:
            os.kill(term.pid, signal.SIGKILL)
        term.wait_exit(10)
        at_death = last_step(run_dir)
        wait_for(lambda: last_step(run_dir) > at_death + 50)  # training goes on without a UI
        assert journal.pid_alive(child_pid)
    finally:
        term.close()

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


# ----------------------------------------------------------------- runs found again from anywhere
def user_env(home, **more):
    """A login shell's environment after an SSH reconnect: a home, no $NEUROTOP_RUNS, and a PATH
    without the project's virtual environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("NEUROTOP_RUNS", "XDG_STATE_HOME", "PATH")}
    return dict(env, HOME=str(home), PATH="/usr/bin:/bin", TERM="xterm-256color", **more)


def test_the_default_runs_directory_is_per_user_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("NEUROTOP_RUNS", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir("/")
    default = tmp_path / ".local" / "state" / "neurotop" / "runs"
    assert journal.runs_root() == default  # not ./runs of wherever the shell is
    run_dir = journal.create_run_dir(journal.runs_root(), "x")
    assert run_dir.parent == default and stat.S_IMODE(default.stat().st_mode) == 0o700
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert journal.runs_root() == tmp_path / "state" / "neurotop" / "runs"
    assert journal.runs_root("elsewhere") == Path("/elsewhere")  # --runs-dir still wins
    monkeypatch.setenv("NEUROTOP_RUNS", str(tmp_path / "mine"))
    assert journal.runs_root() == tmp_path / "mine"


def test_a_link_planted_at_the_runs_directory_is_refused(tmp_path):
    target = tmp_path / "someone-elses"
    target.mkdir()
    planted = tmp_path / "state" / "neurotop" / "runs"
    planted.parent.mkdir(parents=True)
    planted.symlink_to(target)
    with pytest.raises(PermissionError, match="link"):
        journal.create_run_dir(planted, "x")
    assert not any(target.iterdir())


def test_attach_by_id_and_prefix_from_anywhere_and_the_printed_line_works(tmp_path):
    """Defect 2: a run started by a script alone in one directory is opened by `neurotop attach`
    from `/` and from `$HOME`, by id and by unique prefix; `q` → `d` prints a line that works in a
    shell whose PATH lacks the virtual environment."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    env = user_env(home, PYTHONPATH=str(SCRIPTED.parent.parent.parent))
    child = subprocess.Popen([sys.executable, str(SCRIPTED), "--rate", "100", "--name", "findme"], cwd=work, env=env,
                             stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        root = home / ".local" / "state" / "neurotop" / "runs"
        run_dir = wait_for(lambda: journal.list_runs(root) and journal.list_runs(root)[0][0])
        assert not (work / "runs").exists()
        for cwd, which in (("/", run_dir.name), (home, run_dir.name[:17])):
            term = Terminal([NEUROTOP, "attach", which], env, cwd)
            try:
                term.wait_text("findme")
                term.press("q")
                term.wait_text("leave it running")
                term.press("d")
                assert term.wait_exit(20) == 0
            finally:
                term.close()
            printed = term.text.split("Reopen it with:", 1)[1].split()
            assert printed[:3] == [NEUROTOP, "attach", run_dir.name] and "--runs-dir" not in printed
        again = Terminal(printed, env, home)  # the printed line, as a user pastes it after a reconnect
        try:
            again.wait_text("findme")
        finally:
            again.close()
    finally:
        child.kill()


def test_an_ambiguous_prefix_lists_the_candidates(runs):
    from tests.journals import demo_messages, write_run

    first = write_run(runs, demo_messages(steps=10), name="one")
    second = write_run(runs, demo_messages(steps=10), name="two")
    common = os.path.commonprefix([first.name, second.name])
    with pytest.raises(LookupError) as err:
        journal.find_run(runs, common)
    assert first.name in str(err.value) and second.name in str(err.value)
    assert journal.find_run(runs, second.name[: len(common) + 1]) == second  # unique: found
    assert journal.find_run(runs, "one") == first  # by name
    out = subprocess.run([NEUROTOP, "attach", common], capture_output=True, text=True, cwd="/", check=False)
    assert out.returncode == 2 and first.name in out.stderr and second.name in out.stderr


# ------------------------------------------------------------------------------ commands that print
def test_ls_into_a_closed_pipe_ends_quietly(runs):
    """Defect 8: `neurotop ls | head -2` ended in a BrokenPipeError traceback."""
    from tests.journals import demo_messages, write_run

    for name in ("a", "b", "c"):
        write_run(runs, demo_messages(steps=5), name=name)
    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything is written, as `head` does after its lines
    done = subprocess.run([NEUROTOP, "ls"], stdout=write, stderr=subprocess.PIPE, text=True, check=False)
    os.close(write)
    assert done.stderr == "" and done.returncode == 1


def test_help_says_what_each_command_takes():
    """Defect 8: demo's help lists the demo's options; ls offers no UI flags; no command runs the demo."""
    def help_of(*args):
        return subprocess.run([NEUROTOP, *args, "--help"], capture_output=True, text=True, check=True).stdout

    assert "With no command, neurotop runs the demo" in " ".join(help_of().split())
    demo = help_of("demo")
    assert all(flag in demo for flag in ("--steps", "--broken", "--no-guard", "--epochs", "--headless"))
    assert "until" in demo  # runs until stopped
    ls = help_of("ls")
    assert "--runs-dir" in ls and "--refresh" not in ls and "--pictures" not in ls and "--compare" not in ls


def test_runs_dir_may_come_before_or_after_the_command(tmp_path, capsys, monkeypatch):
    from tests.journals import demo_messages, write_run
    from neurotop.tui import cli

    monkeypatch.delenv("NEUROTOP_RUNS", raising=False)
    run_dir = write_run(tmp_path, demo_messages(steps=5), name="here")
    for argv in (["--runs-dir", str(tmp_path), "ls"], ["ls", "--runs-dir", str(tmp_path)]):
        assert cli.main(argv) == 0
        assert run_dir.name in capsys.readouterr().out
