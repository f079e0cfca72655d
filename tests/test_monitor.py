"""The SDK in a real child process: journal, commands over the socket, pause, stop, permissions."""

import os
import socket
import stat
import subprocess
import time


from tests.conftest import scripted, wait_for
from neurotop import Monitor, Param
from neurotop.trainer import journal
from neurotop.trainer.protocol import Command, DecodeCounts, Metric, ParamChange, Status, Event, decode_lines, encode


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
