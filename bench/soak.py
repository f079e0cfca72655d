"""The soak: up to 10M metric steps from a real child (the Monitor SDK, as fast as it can log)
through the real events pipe into a headless ``NeurotopApp`` (160×48, default clocks), bounded in
time. Reports the steps/s the child produced and the UI took in, the backlog when the time cap
hit, what the child dropped for the pipe (the journal keeps it all), the UI's RSS over time and
how late the UI's event loop ran (the lag of a 100 ms sleep).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median, progress, rss_mb
from neurotop.trainer import journal


def _child_step(run_dir: Path, kind: str) -> int:
    try:
        if kind == "raw":
            return int((run_dir / "raw-progress").read_text() or 0)
        return int(json.loads((run_dir / journal.RUN_JSON).read_text()).get("step", 0))
    except (OSError, ValueError):
        return 0


def measure(steps: int = 10_000_000, cap: float = 75.0, kind: str = "sdk") -> dict:
    """``kind``: ``raw``, ``sdk`` (both into the headless app) or ``unread`` (``measure_unread``
    for ``cap`` seconds)."""
    if kind == "unread":
        return dict(measure_unread(cap), kind=kind, cap_s=cap)
    from neurotop.tui.app import NeurotopApp
    from neurotop.tui.link import Link

    root = Path(tempfile.mkdtemp(prefix="neurotop-bench-soak-"))
    run_dir = journal.create_run_dir(root, "soak")
    argv = [sys.executable, "-m", "bench.soak_child", kind, str(steps)]
    app = NeurotopApp(lambda store, notify: Link.spawn(argv, run_dir, store, notify), name="soak",
                      sample_system=True)
    store = app.store
    out: dict = {"steps": steps, "cap_s": cap, "kind": kind}
    timeline = []
    lags = []

    async def drive() -> None:
        async with app.run_test(size=(160, 48)):
            t0 = time.perf_counter()
            next_sample = 0.0
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.1)
                lags.append((time.perf_counter() - t - 0.1) * 1e3)
                elapsed = time.perf_counter() - t0
                if elapsed >= next_sample:
                    next_sample += 5.0
                    loss = store.metrics.series.get("loss")
                    child = app.link.process.pid if app.link is not None and app.link.process else None
                    try:
                        child_rss = round(rss_mb(child), 1) if child else None
                    except Exception:  # it has just ended
                        child_rss = None
                    timeline.append({"t": round(elapsed, 1), "ui_step": store.run.step,
                                     "ui_points": len(loss) if loss is not None else 0,
                                     "child_step": _child_step(run_dir, kind), "ui_rss": round(rss_mb(), 1),
                                     "child_rss": child_rss})
                if store.run.finished or elapsed >= cap:
                    break
            elapsed = time.perf_counter() - t0
            loss = store.metrics.series.get("loss")
            out["elapsed_s"] = elapsed
            out["ui_step_at_cap"] = store.run.step
            out["ui_points_at_cap"] = len(loss) if loss is not None else 0
            out["child_step_at_cap"] = max(_child_step(run_dir, kind), store.run.step)
            out["finished_in_time"] = store.run.finished
            out["ui_rss_at_cap"] = rss_mb()
            # stop the child, let the reader drain the pipe to its end
            link = app.link
            if not store.run.finished:
                if kind == "raw":  # it reads no commands: end it (we started it, in its own group)
                    link._signal(signal.SIGTERM)
                else:
                    await asyncio.get_running_loop().run_in_executor(None, link.stop)
            deadline = time.perf_counter() + 30
            while not store.run.finished and time.perf_counter() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
            loss = store.metrics.series.get("loss")
            out["ui_points_final"] = len(loss) if loss is not None else 0
            out["ui_step_final"] = store.run.step
            out["state"] = store.run.state
            out["store_dropped"] = getattr(store, "dropped", None)  # drops the child reported, if it does

    asyncio.run(drive())
    if kind == "sdk":
        journal_steps = (run_dir / journal.JOURNAL).read_bytes().count(b'"loss"')
        out["journal_loss_points"] = journal_steps
        out["dropped_for_pipe"] = max(0, journal_steps - out["ui_points_final"])
    out["child_steps_per_s"] = out["child_step_at_cap"] / out["elapsed_s"]
    out["ui_points_per_s"] = out["ui_points_at_cap"] / out["elapsed_s"]
    out["backlog_steps"] = out["child_step_at_cap"] - out["ui_step_at_cap"]
    out["timeline"] = timeline
    out["loop_lag_ms_median"] = median(lags)
    out["loop_lag_ms_max"] = max(lags) if lags else 0.0
    progress(f"soak ({kind}): child {out['child_steps_per_s']:,.0f} steps/s, UI {out['ui_points_per_s']:,.0f} points/s, "
             f"backlog {out['backlog_steps']:,} at {out['elapsed_s']:.0f} s")
    os.environ.pop("NEUROTOP_RUN_DIR", None)
    shutil.rmtree(root, ignore_errors=True)
    return out


def measure_unread(seconds: float = 60.0) -> dict:
    """The SDK logging flat out into a UI that reads nothing: ``bench.soak_child sdk`` with an
    events pipe whose other end is held open and never read. The child's RSS once a second, from
    its first journal line (the Monitor is up) for ``seconds``; its writer's queue is bounded, so
    the growth stays small, and the journal says how many points it coalesced."""
    import subprocess

    from neurotop.trainer.protocol import ENV_EVENTS_FD, ENV_RUN_DIR, Coalesced, DecodeCounts, Status, decode_lines

    root = Path(tempfile.mkdtemp(prefix="neurotop-bench-unread-"))
    run_dir = journal.create_run_dir(root, "unread")
    unread, events = os.pipe()
    env = dict(os.environ, **{ENV_EVENTS_FD: str(events), ENV_RUN_DIR: str(run_dir)})
    child = subprocess.Popen([sys.executable, "-m", "bench.soak_child", "sdk", str(10**12)], env=env,
                             pass_fds=(events,), stdout=subprocess.DEVNULL, start_new_session=True)
    os.close(events)
    timeline = []
    try:
        while not (run_dir / journal.JOURNAL).exists() or not (run_dir / journal.JOURNAL).stat().st_size:
            time.sleep(0.01)
        t0 = time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            timeline.append({"t": round(elapsed, 1), "child_rss": round(rss_mb(child.pid), 1),
                             "child_step": _child_step(run_dir, "sdk")})
            time.sleep(1.0)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(60)
        os.close(unread)
    counts = DecodeCounts()
    coalesced = 0
    last_status = None
    path = run_dir / journal.JOURNAL
    reader = journal.JournalReader(path)
    try:
        while reader.offset < path.stat().st_size:
            for m in decode_lines(reader.read_lines(64 << 20), counts):
                if isinstance(m, Coalesced):
                    coalesced += m.points
                elif isinstance(m, Status):
                    last_status = m
    finally:
        reader.close()
    logged = max(p["child_step"] for p in timeline)
    rss = [p["child_rss"] for p in timeline]
    out = {"seconds": seconds, "timeline": timeline, "rss_start": rss[0], "rss_max": max(rss), "rss_end": rss[-1],
           "growth_mb": max(rss) - rss[0], "child_steps": logged, "coalesced_points": coalesced,
           "status_coalesced": last_status.coalesced if last_status else None, "malformed": counts.malformed}
    progress(f"soak (sdk, UI reads nothing): child RSS {rss[0]:.0f} → max {max(rss):.0f} MB in {seconds:.0f} s, "
             f"{coalesced:,} points coalesced")
    shutil.rmtree(root, ignore_errors=True)
    return out
