"""``python -m bench [--quick] [--only NAMES] [--out FILE]``: run the benchmarks, print the table.

The Markdown goes to stdout and to ``bench/results.md`` (raw figures to ``bench/results.json``);
progress lines go to stderr. ``--quick`` uses small sizes (about a minute) and skips the soak.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from bench.common import (
    Row,
    fmt_mb,
    fmt_ms,
    fmt_rate,
    fmt_s,
    fmt_us,
    machine,
    markdown,
    progress,
    ratio,
    run_worker,
    to_json,
)

HERE = Path(__file__).resolve().parent

FULL = {
    "log": {"calls": 100_000, "tb_calls": 10_000, "wandb_calls": 1_000, "rounds": 3},
    "demo": {"steps": 2000, "pairs": 8, "warmup": 300},
    "ingest": {"steps": 1_000_000, "reps": 3},
    "dashboard": {"points": 10_000_000, "batch": 500_000, "frames": 20, "anchor_points": 25_000},
    "tb": {"scalars": 1_000_000},
    "journal": [1_000_000, 10_000_000],
    "terminal": {"warmup": 5.0, "seconds": 20.0},
    "soak": [{"kind": "raw", "steps": 10_000_000, "cap": 75.0}, {"kind": "sdk", "steps": 10_000_000, "cap": 20.0},
             {"kind": "unread", "steps": 0, "cap": 60.0}],
}
QUICK = {
    "log": {"calls": 30_000, "tb_calls": 2_000, "wandb_calls": 200, "rounds": 2},
    "demo": {"steps": 500, "pairs": 3, "warmup": 100},
    "ingest": {"steps": 200_000, "reps": 2},
    "dashboard": {"points": 1_000_000, "batch": 250_000, "frames": 6, "anchor_points": 5_000},
    "tb": {"scalars": 100_000},
    "journal": [1_000_000],
    "terminal": {"warmup": 3.0, "seconds": 8.0},
    "soak": [],
}
ORDER = ("log", "demo", "ingest", "dashboard", "journal", "terminal", "soak")


# ---------------------------------------------------------------------------------- benches
def bench_log(cfg: dict, raw: dict) -> list[Row]:
    r = raw["log"] = run_worker("bench.log_cost:measure", **cfg)
    ours = r["neurotop Monitor.log"]
    peers, ratios, notes = [], [], []
    for name, short in (("TensorBoard SummaryWriter.add_scalar", "TensorBoard `add_scalar`"),
                        ("wandb.log (offline)", "`wandb.log` offline")):
        p = r.get(name, {})
        if "median_us" in p:
            peers.append(f"{short} {fmt_us(p['median_us'])}")
            ratios.append(ratio(ours["median_us"], p["median_us"]))
            extra = (f", plus {fmt_us(p['child_cpu_us'])} CPU in its service process"
                     if name.startswith("wandb") and p["child_cpu_us"] > 0 else "")
            notes.append(f"{short}: median {fmt_us(p['median_us'])} (IQR {p['q1_us']:.1f}–{p['q3_us']:.1f}), "
                         f"amortized {fmt_us(p['amortized_us'])}{extra}, {p['calls']:,} calls.")
        else:
            peers.append(f"{short}: {p.get('error', 'n/a')}")
    row = Row("`log()` per call in the child, median", fmt_us(ours["median_us"]), " · ".join(peers),
              " · ".join(ratios) or "—", "≤ 2 µs", ours["median_us"] <= 2.0)
    row.notes = [
        f"One process, interleaved rounds, the same {cfg['calls'] * cfg['rounds']:,} loss values; calls timed in "
        "batches (1,000 / 100 / 50 per clock read), the median batch is the figure.",
        f"neurotop: IQR {ours['q1_us']:.2f}–{ours['q3_us']:.2f} µs; amortized over the whole loop "
        f"{fmt_us(ours['amortized_us'])} — that includes the writer thread (encoding, journal writes) taking the GIL "
        f"from a loop that does nothing but log; the journal held {ours.get('journal_lines', 0):,} lines.",
    ] + notes
    return [row]


def bench_demo(cfg: dict, raw: dict) -> list[Row]:
    r = raw["demo"] = run_worker("bench.demo_overhead:measure", **cfg)
    pct = r["ratio"] * 100
    row = Row("demo steps/s, full monitoring vs none", f"{pct:.1f} % ({r['rate_monitored']:,.0f} steps/s)",
              f"no monitoring: {r['rate_none']:,.0f} steps/s", f"{pct:.1f} %", "≥ 97 %", pct >= 97.0)
    row.notes = [
        f"`neurotop.trainer.demo.autoencoder.train()` in one worker process, `--steps {r['steps']} --threads 1`, "
        f"{r['pairs']} alternated pairs (monitored first, then unmonitored first, ...), after a warm-up of each.",
        "Monitoring on = journal + events pipe (drained by `cat`, a UI that keeps up) + activation probes + image "
        "samples + control socket. Speed = loop iterations / time from the first to the last `Monitor.step()` "
        "call (wrapped to note the time; the disabled Monitor's `step()` is called the same way).",
        f"Figure: median of the paired ratios (IQR {r['ratio_q1'] * 100:.1f}–{r['ratio_q3'] * 100:.1f} %; pairs: "
        f"{', '.join(f'{x * 100:.0f}' for x in r['ratios'])} %). Ratio of the median rates "
        f"{r['ratio_of_medians'] * 100:.1f} %; by process CPU time (all threads) instead of wall clock "
        f"{r['cpu_ratio'] * 100:.1f} %. The Monitor's own meter said {r['self_overhead'] * 100:.1f} %. "
        f"Fixed cost per run (start, final checkpoint, close): {r['fixed_monitored_s'] * 1e3:.0f} ms monitored vs "
        f"{r['fixed_none_s'] * 1e3:.0f} ms. On this shared machine one pair varies by ±10–20 %, more than the "
        "3 % at stake: read the verdict with the IQR.",
    ]
    return [row]


def bench_ingest(cfg: dict, raw: dict) -> list[Row]:
    r = raw["ingest"] = run_worker("bench.ingest:measure", **cfg)
    rows = []
    for label, got in r["sizes"].items():
        ours = got["ingest_per_s"]
        row = Row(f"UI ingest, metric messages decoded and stored, batches of {label}", fmt_rate(ours),
                  f"msgspec decode alone {fmt_rate(got['msgspec_per_s'])}",
                  f"{ours / got['msgspec_per_s']:.2f}× of decode alone", "≥ 300k/s", ours >= 300e3)
        row.notes = [
            f"{r['messages']:,} real encoded lines (loss every step, val_loss every 100, a status every 2,000), cut "
            f"at line boundaries into batches of {label} (~{got['lines_per_batch']:,.0f} lines), each "
            "`chunk.split(b'\\n')` → `decode_lines` → `RunStore.ingest`; median of "
            f"{cfg['reps']} passes. `decode_lines` alone: {fmt_rate(got['decode_lines_per_s'])}.",
        ]
        rows.append(row)
    return rows


def bench_dashboard(cfg: dict, raw: dict) -> list[Row]:
    d = raw["dashboard"] = run_worker("bench.dashboard:measure", **cfg)
    n = d["points"]
    full, chart = d["full"], d["chart_only"]
    anchor_s = d["anchor_extrapolated_s"]
    rows = []
    row = Row(f"one repaint of the whole dashboard, 160×48, 4 series × {n / 1e6:g}M steps", fmt_ms(full["total"]),
              f"plotext on the raw points ≈ {fmt_s(anchor_s)} (extrapolated)",
              ratio(full["total"] / 1e3, anchor_s), "≤ 25 ms median", full["total"] <= 25.0)
    a = d["anchor"]
    row.notes = [
        f"Real `NeurotopApp` headless (`run_test(size=(160, 48))`) on a real `Link.attach` to a small journal "
        f"(hello, params, activations, samples, a change, notes, output), the 4 series (loss, val_loss, grad_norm, "
        f"lr) filled with `Series.extend`. A frame = `app.dashboard.repaint_text()` + the slow clock (`app.dashboard.repaint_pictures()`: chart, "
        f"activations, reconstructions) + a layout pass if a "
        f"pane asked for one + `screen._compositor.render_update(full=True)` + `render_segments(console)` (the "
        f"escape string for the terminal, {full['bytes'] / 1e3:.0f} KB). Before each frame one new step of the 4 "
        f"series is ingested and every pane's version bumped (all panes redraw); median of {full['frames']} frames "
        f"(IQR {full['q1']:.0f}–{full['q3']:.0f} ms, max {full['max']:.0f} ms), main-thread CPU "
        f"{full['cpu']:.0f} ms.",
        f"Breakdown (medians): text panes' refresh_from {full['panes']:.1f} ms, slow clock (Series.view, "
        f"heatmaps) {full['chart_data']:.1f} ms, chart render (plotext build + Text.from_ansi) {full['chart_render']:.1f} ms, "
        f"layout {full['layout']:.1f} ms, compositor (every other widget's render) {full['compositor']:.1f} ms, "
        f"segments {full['segments']:.1f} ms. Chart-only frames (only metrics changed): {fmt_ms(chart['total'])} "
        f"(chart render {chart['chart_render']:.1f} ms). Chart area {d['chart_size'][0]}×{d['chart_size'][1]}, "
        f"{d['braille_cells']} braille cells drawn.",
        f"Anchor: plotext `build()` on {a['points']:,} raw points (4 series, same plot size) took "
        f"{fmt_s(a['seconds'])} ({a['per_point_us']:.1f} µs/point), extrapolated linearly to 4 × {n:,} points.",
    ]
    rows.append(row)
    return rows


def memory_row(d: dict, tb: dict | None, tb_n: int) -> Row:
    n = d["points"]
    rss = max(d["rss_10m"], d["rss_after_frames"])
    growth = d["rss_growth_second_half"]
    flat = growth <= 10.0
    peer, rat = "—", "—"
    if tb:
        per = (tb["rss_after"] - tb["rss_before"]) / tb_n
        tb_rss = tb["rss_before"] + per * n * 4
        peer = f"TensorBoard EventAccumulator ≈ {fmt_mb(tb_rss)} (extrapolated)"
        rat = ratio(rss, tb_rss)
    row = Row(f"UI resident memory after {n / 1e6:g}M steps × 4 series",
              f"{fmt_mb(rss)}; {growth:+.1f} MB from {n // 2 / 1e6:g}M to {n / 1e6:g}M", peer, rat,
              "≤ 250 MB, flat over the second half", rss <= 250.0 and flat)
    samples = ", ".join(f"{p / 1e6:g}M {m:.0f}" for p, m in d["rss_samples"])
    row.notes = [
        f"RSS (psutil) of the dashboard worker: after importing the app {d['rss_start']:.0f} MB; while filling, "
        f"MB at steps: {samples}; after the app ran its frames {d['rss_after_frames']:.0f} MB. The 4 series hold "
        f"{d['store_bytes'] / 1e6:.1f} MB of arrays ({d['levels']} levels each). Flat = under 10 MB of growth over "
        "the second half.",
    ]
    if tb:
        row.notes.append(
            f"Anchor: `EventAccumulator(size_guidance={{SCALARS: 0}})` (keep every point; the default 10k-point "
            f"reservoir drops points) loading {tb_n:,} scalars went {tb['rss_before']:.0f} → {tb['rss_after']:.0f} MB "
            f"in a fresh process; extrapolated linearly to 4 × {n:,} scalars.")
    return row


def bench_journal(sizes: list[int], tb_cfg: dict, raw: dict) -> list[Row]:
    rows = []
    tb = None
    tb_n = tb_cfg["scalars"]
    try:
        w = run_worker("bench.tb_anchor:write", scalars=tb_n)
        tb = run_worker("bench.tb_anchor:load", log_dir=w["log_dir"], scalars=tb_n)
        tb["write_s"], tb["file_bytes"] = w["seconds"], w["bytes"]
        _rm(Path(w["log_dir"]))
        raw["tb"] = tb
        progress(f"EventAccumulator: {tb_n:,} scalars in {tb['seconds']:.1f} s")
    except Exception as err:  # tensorboard missing: our figures stand alone
        raw["tb"] = {"error": str(err)}
        progress(f"TensorBoard anchor unavailable: {err}")
    raw["journal"] = {}
    for steps in sizes:
        w = run_worker("bench.open_journal:write", steps=steps)
        o = run_worker("bench.open_journal:open_run", run_dir=w["run_dir"], lines=w["lines"], steps=steps)
        o.update(write_s=w["seconds"], file_bytes=w["bytes"])
        raw["journal"][steps] = o
        progress(f"open journal {steps:,}: {o['seconds']:.1f} s ({'complete' if o['complete'] else 'INCOMPLETE'})")
        _rm(Path(w["run_dir"]).parent)
        peer, rat = "—", "—"
        if tb:
            tb_s = tb["seconds"] * steps / tb_n
            word = "measured" if steps == tb_n else "extrapolated"
            peer = f"EventAccumulator {fmt_s(tb_s)} ({word})"
            rat = ratio(o["seconds"], tb_s)
        target = "≤ 10 s" if steps >= 10_000_000 else "—"
        met = (o["seconds"] <= 10.0 and o["complete"]) if steps >= 10_000_000 else None
        if steps < 10_000_000 and max(sizes) < 10_000_000:  # --quick: judge the 10M target by extrapolation
            target, met = "≤ 10 s for 10M", o["complete"] and o["seconds"] * 10_000_000 / steps <= 10.0
        row = Row(f"opening a finished {steps / 1e6:g}M-step journal", fmt_s(o["seconds"])
                  + ("" if o["complete"] else " (**incomplete**)"), peer, rat, target, met)
        row.notes = [
            f"{o['messages']:,} lines, {o['file_bytes'] / 1e6:,.0f} MB (hello, loss every step, val_loss every 100, "
            f"status every 2,000, end record; written from a template in {o['write_s']:.0f} s). Timed in a fresh "
            f"process: `Link.attach` until the journal reader thread has read the end record and stopped "
            f"({fmt_rate(o['rate'])}); the store then held every step. RSS {o['rss_before']:.0f} → "
            f"{o['rss_after']:.0f} MB (peak seen {o['rss_peak']:.0f} MB).",
        ]
        if tb:
            row.notes.append(f"Anchor: `EventAccumulator.Reload()` on a {tb_n:,}-scalar tfevents file of the same "
                             f"loss values (float32), {tb['file_bytes'] / 1e6:.0f} MB, in a fresh process: "
                             f"{fmt_s(tb['seconds'])}; scaled linearly where the sizes differ.")
        rows.append(row)
    raw["_tb_for_memory"] = (tb, tb_n)
    return rows


def bench_terminal(cfg: dict, raw: dict) -> list[Row]:
    t = raw["terminal"] = run_worker("bench.terminal:measure", **cfg)
    kb = t["kb_per_s"]
    row = Row("bytes written to the terminal at steady state, 160×48, default refresh", f"{kb:.1f} KB/s", "—", "—",
              "≤ 20 KB/s", kb <= 20.0)
    panes = ", ".join(f"{k} {v:.1f}" for k, v in t["panes_kb_per_s"].items() if v >= 0.05)
    row.notes = [
        f"The real `neurotop run -- python tests/children/scripted.py --rate 500` in a pseudo-terminal (`pty.fork`) "
        f"of 160×48, TERM=xterm-256color, COLORTERM=truecolor; every byte counted for {t['seconds']:.0f} s after a "
        f"{cfg['warmup']:.0f} s warm-up ({t['bytes']:,} bytes, KB = 1,000 bytes; {t['frames_per_s']:.1f} write "
        f"bursts/s). By pane (KB/s, charged by the cursor position each run of bytes starts at): {panes}. "
        f"The run was then stopped with `q` `s` (child state: {t['child_state']}).",
    ]
    return [row]


def bench_soak(cfgs: list[dict], raw: dict) -> list[Row]:
    rows = []
    raw["soak"] = []
    for cfg in cfgs:
        s = run_worker("bench.soak:measure", **cfg)
        raw["soak"].append(s)
        if s["kind"] == "raw":
            reached = "all" if s["ui_step_at_cap"] >= s["steps"] else f"{s['ui_step_at_cap']:,}"
            row = Row(f"soak: {s['steps'] / 1e6:g}M metric steps through a real pipe into the headless app",
                      f"{fmt_rate(s['ui_points_per_s'])} taken in; {reached} steps in {s['elapsed_s']:.0f} s",
                      "—", "—", f"informational (cap {s['cap_s']:.0f} s)", None)
            row.notes = [
                "A child (`bench.soak_child raw`) writes the journal lines with blocking writes to the events pipe, so "
                "the UI's reading sets the pace and nothing is dropped; the app (160×48, default clocks, system "
                f"sampler on) reads through `Link.spawn`. Backlog when the cap hit: {s['backlog_steps']:,} steps "
                f"(the child blocks, so it cannot run ahead by more than a pipe and a 20k-step chunk). UI RSS "
                f"{_rss_line(s)}. Event-loop lag of a 100 ms sleep: median {s['loop_lag_ms_median']:.1f} ms, max "
                f"{s['loop_lag_ms_max']:.0f} ms.",
            ]
        elif s["kind"] == "unread":
            row = Row("soak: the Monitor SDK logging flat out into a UI that reads nothing",
                      f"child RSS +{s['growth_mb']:.0f} MB in {s['seconds']:.0f} s (before the bounded queue: "
                      f"34 → 627 MB in 20 s)", "—", "—", "≤ +50 MB over 60 s", s["growth_mb"] <= 50)
            row.notes = [
                f"`bench.soak_child sdk` with an events pipe held open and never read. The child's RSS "
                f"{_rss_line(s, 'child_rss')}; it logged {s['child_steps']:,} steps, of which the writer "
                f"coalesced {s['coalesced_points']:,} points into min/max/mean/last spans (journaled as "
                f"`coalesced` messages; `status.coalesced` {s['status_coalesced'] or 0:,} at the last heartbeat).",
            ]
        else:
            row = Row("soak: the Monitor SDK logging flat out, through the pipe into the headless app",
                      f"UI took {fmt_rate(s['ui_points_per_s'])} of the child's {fmt_rate(s['child_steps_per_s'])}",
                      "—", "—", f"informational (cap {s['cap_s']:.0f} s)", None)
            dropped = s.get("dropped_for_pipe", 0)
            row.notes = [
                f"`bench.soak_child sdk`: `while mon.step(): mon.log(loss=...)` (val_loss every 100) under "
                f"`Link.spawn` in the headless app. In {s['elapsed_s']:.0f} s the child logged "
                f"{s['child_step_at_cap']:,} steps; the UI had {s['ui_points_at_cap']:,} points (backlog "
                f"{s['backlog_steps']:,} steps). After the stop the journal held {s.get('journal_loss_points', 0):,} "
                f"loss points and the UI {s['ui_points_final']:,}: {dropped:,} were dropped for the pipe (by design, "
                f"never for the journal). UI RSS {_rss_line(s)}; the child's RSS {_rss_line(s, 'child_rss')} (its "
                f"queue of logged values). The child's step is read from its run.json, which its writer thread "
                f"updates between batches. Loop lag median {s['loop_lag_ms_median']:.1f} ms, "
                f"max {s['loop_lag_ms_max']:.0f} ms.",
            ]
        rows.append(row)
    return rows


def _rss_line(s: dict, key: str = "ui_rss") -> str:
    points = [p.get(key) for p in s["timeline"][:: max(1, len(s["timeline"]) // 6)]]
    return " → ".join(f"{m:.0f}" if m is not None else "?" for m in points) + " MB"


def _rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, no soak: about a minute")
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(ORDER)}")
    ap.add_argument("--out", default=str(HERE / "results.md"), help="where the Markdown goes (default bench/results.md)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    only = set(args.only.split(",")) if args.only else set(ORDER)
    unknown = only - set(ORDER)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    command = "python -m bench" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    started = time.perf_counter()
    rows: list[Row] = []
    raw: dict = {}
    details: list[str] = []
    dashboard_raw = None

    def attempt(name: str, fn, *fn_args) -> None:
        t0 = time.perf_counter()
        progress(f"{name}: start")
        try:
            rows.extend(fn(*fn_args))
        except Exception as err:
            traceback.print_exc()
            rows.append(Row(name, f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"))
        progress(f"{name}: {time.perf_counter() - t0:.0f} s")

    for name in ORDER:
        if name not in only:
            continue
        if name == "log":
            attempt("log() cost", bench_log, cfg["log"], raw)
        elif name == "demo":
            attempt("demo overhead", bench_demo, cfg["demo"], raw)
        elif name == "ingest":
            attempt("UI ingest", bench_ingest, cfg["ingest"], raw)
        elif name == "dashboard":
            attempt("dashboard", bench_dashboard, cfg["dashboard"], raw)
            dashboard_raw = raw.get("dashboard")
        elif name == "journal":
            attempt("journal", bench_journal, cfg["journal"], cfg["tb"], raw)
        elif name == "terminal":
            attempt("terminal", bench_terminal, cfg["terminal"], raw)
        elif name == "soak" and cfg["soak"]:
            attempt("soak", bench_soak, cfg["soak"], raw)
    if dashboard_raw is not None:  # memory needs the dashboard's RSS and, if it ran, the TensorBoard anchor
        tb, tb_n = raw.pop("_tb_for_memory", (None, cfg["tb"]["scalars"]))
        rows.insert(_after(rows, "one repaint"), memory_row(dashboard_raw, tb, tb_n))
    raw.pop("_tb_for_memory", None)
    details += _details(raw)

    seconds = time.perf_counter() - started
    text = markdown(rows, machine(), command, seconds, details)
    print(text)
    out = Path(args.out)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"rows": to_json(rows), "raw": raw}, indent=1, default=str))
    progress(f"wrote {out} in {seconds / 60:.1f} min")
    return 0


def _after(rows: list[Row], prefix: str) -> int:
    for i, r in enumerate(rows):
        if r.what.startswith(prefix):
            return i + 1
    return len(rows)


def _details(raw: dict) -> list[str]:
    out = []
    t = raw.get("terminal")
    if t and t.get("top_rows"):
        rows = ", ".join(f"row {r}: {kb:.1f}" for r, kb in t["top_rows"])
        out.append(f"- Terminal bytes by screen row (KB/s, top 8): {rows}. Pane regions (x, y, w, h): "
                   + ", ".join(f"{k} {tuple(v)}" for k, v in t.get("regions", {}).items()) + ".")
    for s in raw.get("soak", []):
        if s["kind"] == "unread":
            out.append("- Soak (unread) child RSS: " + "; ".join(
                f"{p['t']:.0f} s: step {p['child_step']:,}, {p['child_rss']:.0f} MB" for p in s["timeline"][::10]) + ".")
            continue
        out.append(f"- Soak ({s['kind']}) timeline: " + "; ".join(
            f"{p['t']:.0f} s: child {p['child_step']:,}, UI {p['ui_step']:,}, {p['ui_rss']:.0f} MB"
            for p in s["timeline"]) + ".")
    return out


if __name__ == "__main__":
    sys.exit(main())
