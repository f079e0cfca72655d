"""The UI at the end of a long night: 4 series × 10M steps in the store, the real app at 160×48.

One worker process does, in order:

1. memory: imports the app, then fills a ``RunStore`` with 4 series (loss, val_loss, grad_norm, lr),
   every step of each, through ``Series.extend`` in big batches, sampling the process RSS at every
   tenth of the way (flat over the second half is the target);
2. repaint: runs the real ``NeurotopApp`` headless (``run_test(size=(160, 48))``) on a real
   ``Link.attach`` to a small journal (hello, params, activations, samples, a change, notes, output)
   whose series are the filled ones, and times one frame: ``app.dashboard.repaint_text()`` +
   ``app.dashboard.repaint_pictures()`` (the slow clock: chart, activations, reconstructions) + a layout pass
   where a pane asked for one + ``screen._compositor.render_update(full=True)`` +
   ``render_segments`` (the escape-sequence string a terminal would get). Before each frame a new
   step of the 4 series is ingested, and for the "whole dashboard" figure every pane's version is
   bumped (and an output line and a system sample added) so every pane redraws;
3. anchor: plotext building the chart from raw points (4 × 25k = 100k points, the same plot size),
   extrapolated linearly to 4 × 10M points.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import data
from bench.common import median, progress, quartiles, rss_mb

NAMES = ("loss", "val_loss", "grad_norm", "lr")


def values(name: str, steps: np.ndarray, total: int) -> np.ndarray:
    if name == "loss":
        return data.losses(steps, 0)
    if name == "val_loss":
        return data.losses(steps, 1, 1.1)
    if name == "grad_norm":
        rng = np.random.default_rng(int(steps[0]) + 7)
        return 1.0 + 0.5 * np.abs(rng.standard_normal(len(steps))) * np.exp(-steps / max(total, 1))
    return np.where(steps < total // 2, 1e-3, 2e-3)


def fill(store, points: int, batch: int) -> list[tuple[int, float]]:
    from neurotop.tui.series import Series

    samples = []
    marks = {points * k // 10 for k in range(1, 11)}
    series = {name: store.metrics.series.setdefault(name, Series()) for name in NAMES}
    done = 0
    for first in range(1, points + 1, batch):
        steps = np.arange(first, min(first + batch, points + 1), dtype=np.int64)
        for name in NAMES:
            series[name].extend(steps, values(name, steps, points))
        done = int(steps[-1])
        if any(done >= m > done - len(steps) for m in marks):
            samples.append((done, rss_mb()))
    from neurotop.trainer.protocol import Metric

    store.ingest([Metric(step=points, t=time.time(), values={}, epoch=points // data.STEPS_PER_EPOCH)])
    with store.lock:
        store.metrics.touch()  # the series were filled directly: faster than 10M messages
    return samples


def plotext_anchor(width: int, height: int, per_series: int = 25_000) -> dict:
    import plotext as plt

    steps = np.arange(1, per_series + 1, dtype=np.int64)
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.xlabel("step")
    for name in NAMES:
        plt.plot(steps.tolist(), values(name, steps, per_series).tolist(), marker="braille", label=name)
    t0 = time.perf_counter()
    out = plt.build()
    seconds = time.perf_counter() - t0
    plt.clear_figure()
    points = per_series * len(NAMES)
    return {"points": points, "seconds": seconds, "chars": len(out),
            "per_point_us": seconds / points * 1e6}


def measure(points: int = 10_000_000, batch: int = 500_000, frames: int = 20, anchor_points: int = 25_000,
            settle: float = 1.2) -> dict:
    # the UI's imports first, so the RSS is that of a UI process, not of a bare store
    from textual.widget import Widget

    from neurotop.trainer.protocol import Metric
    from neurotop.tui.app import NeurotopApp
    from neurotop.tui.link import Link, OutputLines
    from neurotop.tui.system import SystemSampler
    from neurotop.tui.widgets.loss_chart import LossChart

    rss_start = rss_mb()
    root = Path(tempfile.mkdtemp(prefix="neurotop-bench-dash-"))
    run_dir = data.dashboard_run(root, points, os.getpid())
    app = NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), name="dashboard",
                      sample_system=True)
    store = app.store
    t0 = time.perf_counter()
    samples = fill(store, points, batch)
    fill_s = time.perf_counter() - t0
    progress(f"dashboard: filled 4 × {points:,} points in {fill_s:.1f} s, RSS {samples[-1][1]:.0f} MB")
    store_bytes = sum(s.nbytes for s in store.metrics.series.values())
    levels = store.metrics.series["loss"].nlevels
    sampler = SystemSampler()
    system_sample = sampler.sample()

    result: dict = {}


    async def frame(full: bool, step: int) -> dict:
        store.ingest([Metric(step=step, t=data.T0 + step / data.STEPS_PER_S,
                             values={n: float(values(n, np.array([step]), points)[0]) for n in NAMES},
                             epoch=step // data.STEPS_PER_EPOCH)])
        if full:
            store.ingest([OutputLines([f"step {step}: loss 0.0213"]), system_sample])
            with store.lock:  # every pane redraws
                insights = store.insights
                for part in (store.run, store.metrics, store.params, store.events, insights.activations,
                             insights.samples, insights.health, insights.gradients, insights.latent, insights.signal):
                    part.touch()
        screen = app.screen
        chart = app.query_one(LossChart)
        c0, t0 = time.thread_time(), time.perf_counter()
        app.dashboard.repaint_text()
        t1 = time.perf_counter()
        app.dashboard.repaint_pictures()  # the slow clock: chart, activations, reconstructions, output
        t2 = time.perf_counter()
        chart.render()  # plotext build + Text.from_ansi; cached, so the compositor reuses it
        t3 = time.perf_counter()
        if any(w._layout_required for w in screen.walk_children(Widget)):
            screen._refresh_layout()
        t4 = time.perf_counter()
        update = screen._compositor.render_update(full=True, screen_stack=app._background_screens)
        t5 = time.perf_counter()
        text = update.render_segments(app.console)
        t6, c6 = time.perf_counter(), time.thread_time()
        return {"total": (t6 - t0) * 1e3, "cpu": (c6 - c0) * 1e3, "panes": (t1 - t0) * 1e3,
                "chart_data": (t2 - t1) * 1e3, "chart_render": (t3 - t2) * 1e3, "layout": (t4 - t3) * 1e3,
                "compositor": (t5 - t4) * 1e3, "segments": (t6 - t5) * 1e3, "bytes": len(text.encode())}

    async def drive() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (store.run.hello and store.insights.activations.items and store.insights.samples.items
                                                        and store.output.total):
                await pilot.pause(0.05)
            await pilot.pause(settle)  # the chart's first paint (1 Hz clock) and a system sample
            chart = app.query_one(LossChart)
            step = points + 1
            for label, full in (("full", True), ("chart", False)):
                got = []
                for _ in range(frames):
                    step += 1
                    got.append(await frame(full, step))
                    await pilot.pause(0.05)
                result[label] = got
            text = app.screen._compositor.render_update(full=True).render_segments(app.console)
            result["braille_cells"] = sum(1 for ch in text if "\u2800" <= ch <= "\u28ff")
            result["chart_size"] = [chart.size.width, chart.size.height]
            result["chart_subtitle"] = str(chart.border_subtitle)
            result["rss_after_frames"] = rss_mb()

    t0 = time.perf_counter()
    asyncio.run(drive())
    app_s = time.perf_counter() - t0
    progress(f"dashboard: {2 * frames} frames in {app_s:.1f} s")
    shutil.rmtree(root, ignore_errors=True)
    width, height = result["chart_size"]
    anchor = plotext_anchor(width, height, anchor_points)

    def summary(rows: list[dict]) -> dict:
        out = {k: median(r[k] for r in rows) for k in rows[0]}
        out["q1"], out["q3"] = quartiles([r["total"] for r in rows])
        out["max"] = max(r["total"] for r in rows)
        out["frames"] = len(rows)
        return out

    half = [r for p, r in samples if p >= points // 2]
    return {
        "points": points,
        "fill_s": fill_s,
        "rss_start": rss_start,
        "rss_samples": samples,
        "rss_5m": half[0],
        "rss_10m": half[-1],
        "rss_growth_second_half": half[-1] - half[0],
        "rss_after_frames": result["rss_after_frames"],
        "store_bytes": store_bytes,
        "levels": levels,
        "full": summary(result["full"]),
        "chart_only": summary(result["chart"]),
        "braille_cells": result["braille_cells"],
        "chart_size": result["chart_size"],
        "chart_subtitle": result["chart_subtitle"],
        "anchor": anchor,
        "anchor_extrapolated_s": anchor["per_point_us"] * points * len(NAMES) / 1e6,
    }
