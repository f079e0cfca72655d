"""Bytes the real ``neurotop`` writes to a terminal at steady state (what an SSH link carries).

``neurotop run -- python tests/children/scripted.py --rate 500`` runs inside a pseudo-terminal of
160×48 (``pty.fork``; TERM=xterm-256color, COLORTERM=truecolor, as a modern terminal says), the
default refresh. After a warm-up every byte the app writes is counted for a fixed window. The
bytes are then attributed to panes: each cursor-positioning sequence starts a run of bytes that is
charged to the pane under that cell (pane regions from a headless app attached to the same run at
the same size). Then ``q``, ``s`` stop the run cleanly.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench.common import ROOT, progress

MOVE = re.compile(rb"\x1b\[(\d+);(\d+)H")


def _read_for(fd: int, seconds: float, sink: bytearray | None, times: list | None = None) -> int:
    deadline = time.monotonic() + seconds
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return total
        ready, _, _ = select.select([fd], [], [], min(left, 0.1))
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            return total
        if not chunk:
            return total
        total += len(chunk)
        if sink is not None:
            sink += chunk
        if times is not None:
            times.append(time.monotonic())


def attribute(stream: bytes) -> dict[tuple[int, int], int]:
    """Bytes charged to the (row, col) of the cursor move that preceded them (1-based)."""
    out: dict[tuple[int, int], int] = collections.Counter()
    pos, last = (0, 0), 0
    for m in MOVE.finditer(stream):
        out[pos] += m.start() - last
        pos, last = (int(m.group(1)), int(m.group(2))), m.start()
    out[pos] += len(stream) - last
    return out


async def _regions(run_dir: Path, width: int, height: int) -> dict[str, tuple[int, int, int, int]]:
    from neurotop.tui.app import NeurotopApp
    from neurotop.tui.link import Link

    app = NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), sample_system=True)
    regions = {}
    async with app.run_test(size=(width, height)) as pilot:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (app.store.run.hello and app.store.run.finished):
            await pilot.pause(0.1)
        await pilot.pause(1.5)
        for pane in ("header", "loss", "activations", "reconstructions", "system", "params", "log"):
            r = app.query_one(f"#{pane}").region
            regions[pane] = (r.x, r.y, r.width, r.height)
        from textual.widgets import Footer

        r = app.query_one(Footer).region
        regions["footer"] = (r.x, r.y, r.width, r.height)
    return regions


def _pane_of(regions: dict, row: int, col: int) -> str:
    x, y = col - 1, row - 1
    for name, (rx, ry, rw, rh) in regions.items():
        if rx <= x < rx + rw and ry <= y < ry + rh:
            return name
    return "other"


def measure(warmup: float = 5.0, seconds: float = 20.0, rate: int = 500, width: int = 160, height: int = 48) -> dict:
    runs = Path(tempfile.mkdtemp(prefix="neurotop-bench-tty-"))
    env = dict(os.environ, NEUROTOP_RUNS=str(runs), TERM="xterm-256color", COLORTERM="truecolor",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TEXTUAL", None)
    argv = [sys.executable, "-m", "neurotop.tui.cli", "run", "--", sys.executable, str(ROOT / "tests/children/scripted.py"),
            "--rate", str(rate)]
    pid, fd = pty.fork()
    if pid == 0:  # the child: size the terminal before the app looks at it
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            os.chdir(ROOT)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    start = _read_for(fd, warmup, None)
    stream, times = bytearray(), []
    t0 = time.monotonic()
    _read_for(fd, seconds, stream, times)
    window = time.monotonic() - t0
    progress(f"terminal: {len(stream) / window / 1e3:.1f} KB/s over {window:.0f} s")

    # stop the run cleanly from the keyboard: q opens the quit dialog, s stops the run
    try:
        os.write(fd, b"q")
        _read_for(fd, 1.0, None)
        os.write(fd, b"s")
    except OSError:
        pass
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        _read_for(fd, 0.2, None)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    run_dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    child_state = "?"
    regions = {}
    if run_dirs:
        info = json.loads((run_dirs[-1] / "run.json").read_text())
        child_state = info.get("state", "?")
        child = int(info.get("pid") or 0)
        if child > 0:  # the scripted child lives in its own session: make sure it is gone
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            regions = asyncio.run(_regions(run_dirs[-1], width, height))
        except Exception as err:  # the attribution is a detail; the figure stands without it
            progress(f"terminal: pane regions unavailable ({err})")

    shutil.rmtree(runs, ignore_errors=True)
    cells = attribute(bytes(stream))
    panes: dict[str, int] = collections.Counter()
    rows: dict[int, int] = collections.Counter()
    for (row, col), n in cells.items():
        rows[row] += n
        panes[_pane_of(regions, row, col) if regions else "?"] += n
    # a burst of reads with no gap of 20 ms is one screen update
    frames = sum(1 for a, b in zip([t0] + times, times) if b - a > 0.02)
    return {
        "bytes": len(stream),
        "seconds": window,
        "kb_per_s": len(stream) / window / 1e3,
        "warmup_bytes": start,
        "frames": frames,
        "frames_per_s": frames / window,
        "bytes_per_frame": len(stream) / frames if frames else None,
        "panes_kb_per_s": {k: v / window / 1e3 for k, v in sorted(panes.items(), key=lambda kv: -kv[1])},
        "top_rows": sorted(((r, n / window / 1e3) for r, n in rows.items()), key=lambda x: -x[1])[:8],
        "regions": regions,
        "exit_status": status,
        "child_state": child_state,
    }
