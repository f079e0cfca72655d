#!/usr/bin/env python3
"""Soak: the real demo under the real TUI in a real pseudo-terminal, for N minutes.

    .venv/bin/python scripts/soak.py                 # 30 minutes, a sample a minute
    .venv/bin/python scripts/soak.py --minutes 3 --every 20
    .venv/bin/python scripts/soak.py --minutes 60 -- --device cuda   # after --: options for the demo

``neurotop demo`` is started with ``pty.fork`` (a terminal of ``--size``, ``TERM=xterm-256color``,
``NEUROTOP_RUNS`` a temporary directory unless ``--runs-dir``); a thread drains the terminal and
counts its bytes. Every ``--every`` seconds a row: the UI's and the training child's resident memory,
open file descriptors (``/proc/PID/fd``) and CPU, threads, the run's step and rate, the journal's
size and what the UI wrote to the terminal. At the end the run is stopped the way a person does it
(``q``, then ``s``), and the script checks the UI exited, the child is gone and ``run.json`` says
``stopped``. Exit status 0 when it all held, 1 otherwise. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from neurotop.trainer import journal  # noqa: E402


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    demo_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, demo_args = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="how long the run is watched (default 30)")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between samples (default 60)")
    ap.add_argument("--size", default="120x40", help="terminal columns x rows (default 120x40)")
    ap.add_argument("--runs-dir", help="where the run goes (default: a temporary directory, removed after)")
    ap.add_argument("--neurotop", default=str(ROOT / ".venv" / "bin" / "neurotop"), help="the neurotop to run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary runs directory")
    args = ap.parse_args(argv)
    if not any(a.startswith("--epochs") for a in demo_args):
        demo_args = ["--epochs", "100000000", *demo_args]  # never finishes on its own within the soak
    return args, demo_args


class Terminal:
    """The pty's master side, drained on a thread so the UI never blocks on a full terminal."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.bytes = 0
        self.closed = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            while True:
                data = os.read(self.master, 65536)
                if not data:
                    break
                self.bytes += len(data)
        except OSError:
            pass
        self.closed.set()

    def type(self, keys: str) -> None:
        try:
            os.write(self.master, keys.encode())
        except OSError:
            pass


def proc_figures(proc: psutil.Process | None) -> dict:
    """RSS (MB), open fds, CPU % since the last call, threads; blanks when the process is gone."""
    if proc is None:
        return {"rss": None, "fds": None, "cpu": None, "thr": None}
    try:
        with proc.oneshot():
            return {"rss": proc.memory_info().rss / 2**20, "fds": len(os.listdir(f"/proc/{proc.pid}/fd")),
                    "cpu": proc.cpu_percent(None), "thr": proc.num_threads()}
    except (psutil.Error, OSError):
        return {"rss": None, "fds": None, "cpu": None, "thr": None}


def find_run(root: Path, timeout: float = 60.0) -> Path | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = journal.list_runs(root)
        if runs and runs[0][1].pid:
            return runs[0][0]
        time.sleep(0.2)
    return None


def run_info(run_dir: Path | None) -> dict:
    if run_dir is None:
        return {}
    try:
        return json.loads((run_dir / journal.RUN_JSON).read_bytes())
    except (OSError, ValueError):
        return {}


def fmt(value, spec: str, width: int) -> str:
    return (format(value, spec) if value is not None else "-").rjust(width)


COLUMNS = ("elapsed", "step", "it/s", "ui MB", "ui fd", "ui cpu%", "ui thr", "child MB", "child fd",
           "child cpu%", "journal MB", "tty KB/s")


def row(elapsed, step, rate, ui, child, journal_mb, tty_rate) -> str:
    cells = [f"{int(elapsed) // 60:3d}:{int(elapsed) % 60:02d}".rjust(7), fmt(step, ",d", 10), fmt(rate, ",.0f", 7),
             fmt(ui["rss"], ".1f", 7), fmt(ui["fds"], "d", 6), fmt(ui["cpu"], ".1f", 8), fmt(ui["thr"], "d", 7),
             fmt(child["rss"], ".1f", 9), fmt(child["fds"], "d", 9), fmt(child["cpu"], ".1f", 11),
             fmt(journal_mb, ".2f", 11), fmt(tty_rate, ".1f", 9)]
    return " ".join(cells)


def header() -> str:
    widths = (7, 10, 7, 7, 6, 8, 7, 9, 9, 11, 11, 9)
    return " ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True))


def main(argv: list[str] | None = None) -> int:
    args, demo_args = parse_args(list(sys.argv[1:] if argv is None else argv))
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    temporary = args.runs_dir is None
    root = Path(args.runs_dir or tempfile.mkdtemp(prefix="neurotop-soak-")).absolute()
    env = dict(os.environ, NEUROTOP_RUNS=str(root), TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
    env.pop("NO_COLOR", None)
    argv_ui = [args.neurotop, "demo", *demo_args]
    print(f"soak: {' '.join(argv_ui)}  ({cols}x{rows}, {args.minutes:g} min, a sample every {args.every:g} s)")
    print(f"soak: runs in {root}", flush=True)

    pid, master = pty.fork()
    if pid == 0:  # the child: exec at once
        try:
            os.execve(argv_ui[0], argv_ui, env)
        finally:
            os._exit(127)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    tty = Terminal(master)
    ui = psutil.Process(pid)
    problems: list[str] = []
    child: psutil.Process | None = None
    run_dir = find_run(root)
    if run_dir is None:
        problems.append("no run appeared within a minute")
    else:
        try:
            child = psutil.Process(run_info(run_dir)["pid"])
        except (psutil.Error, KeyError):
            problems.append("the training child could not be found")
    proc_figures(ui), proc_figures(child)  # prime the CPU counters

    samples: list[dict] = []
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    last = (t0, 0, tty.bytes)
    print(header(), flush=True)
    while not problems:
        now = time.monotonic()
        if now >= end:
            break
        time.sleep(min(args.every, end - now))
        now = time.monotonic()
        info = run_info(run_dir)
        step = int(info.get("step") or 0)
        rate = (step - last[1]) / (now - last[0]) if now > last[0] else 0.0
        tty_rate = (tty.bytes - last[2]) / 1024 / (now - last[0]) if now > last[0] else 0.0
        last = (now, step, tty.bytes)
        sample = {"t": now - t0, "step": step, "ui": proc_figures(ui), "child": proc_figures(child)}
        try:
            journal_mb = (run_dir / journal.JOURNAL).stat().st_size / 2**20
        except OSError:
            journal_mb = None
        samples.append(sample)
        print(row(sample["t"], step, rate, sample["ui"], sample["child"], journal_mb, tty_rate), flush=True)
        if sample["ui"]["rss"] is None:
            problems.append("the UI died during the soak")
        if sample["child"]["rss"] is None:
            problems.append(f"the training child is gone (run.json: {info.get('state')})")

    # ------------------------------------------------------------------ stop it as a person would
    print("soak: stopping the run (q, then s)", flush=True)
    tty.type("q")
    time.sleep(1.5)
    tty.type("s")
    status = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        done, wstatus = os.waitpid(pid, os.WNOHANG)
        if done:
            status = wstatus
            break
        time.sleep(0.2)
    if status is None:
        problems.append("the UI did not exit within 90 s of q, s: killed")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            time.sleep(3)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    elif not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        problems.append(f"the UI exited with status {status:#x}")
    if child is not None:
        try:
            child.wait(30)
        except psutil.TimeoutExpired:
            problems.append("the training child outlived the stop: killed")
            child.kill()
        except psutil.Error:
            pass
    info = run_info(run_dir)
    if run_dir is not None and info.get("state") != "stopped":
        problems.append(f"run.json says {info.get('state')!r}, not 'stopped'")
    tty.closed.wait(5)
    os.close(master)

    # ------------------------------------------------------------------------------- summary
    if len(samples) >= 2:
        first, final = samples[0], samples[-1]
        for who in ("ui", "child"):
            a, b = first[who], final[who]
            if a["rss"] is not None and b["rss"] is not None:
                print(f"soak: {who:5s} RSS {a['rss']:.1f} -> {b['rss']:.1f} MB ({b['rss'] - a['rss']:+.1f}), "
                      f"fds {a['fds']} -> {b['fds']} ({b['fds'] - a['fds']:+d}), "
                      f"peak RSS {max(s[who]['rss'] or 0 for s in samples):.1f} MB")
    if run_dir is not None:
        print(f"soak: run {run_dir.name}: {info.get('state')}, step {int(info.get('step') or 0):,}; "
              f"terminal output {tty.bytes / 2**20:.1f} MB in all")
    for problem in problems:
        print(f"soak: PROBLEM: {problem}")
    print("soak: ok" if not problems else "soak: FAILED", flush=True)
    if temporary and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
