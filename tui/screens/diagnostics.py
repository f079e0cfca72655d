"""`d`: what the link has seen — messages, what was skipped and why, memory — for a person who
wonders whether the picture is complete."""

from __future__ import annotations

import os

import psutil
from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from neurotop.tui.format import fmt_bytes
from neurotop.tui.store import MAX_SERIES, RunStore


def describe_diagnostics(store: RunStore, run_dir: str, pid: int | None) -> str:
    with store.lock:
        run, counts, metrics, output = store.run, store.intake.counts, store.metrics, store.output
        series = metrics.series.values()
        series_bytes = sum(s.nbytes for s in series)
        points = sum(len(s) for s in series)
        nonfinite = sum(s.nonfinite for s in series)
        rows = [
            ("run directory", run_dir),
            ("run pid", str(pid or "-")),
            ("state", f"{run.state} {run.detail}".strip()),
            ("messages decoded", f"{store.intake.messages:,}"),
            ("malformed lines", f"{counts.malformed:,}" + (f"  (last: {counts.last_error})" if counts.last_error else "")),
            ("unknown types", f"{counts.unknown:,}"),
            ("torn lines", f"{counts.torn:,}"),
            ("dropped for the pipe", f"{run.dropped:,}  (the journal has them all)"),
            ("series", f"{len(metrics.series)}  holding {points:,} points in {fmt_bytes(series_bytes)}"),
            ("non-finite values", f"{nonfinite:,}"),
            ("series not kept", f"{metrics.refused_series:,}  (past the limit of {MAX_SERIES} names)"),
            ("steps out of order", f"{metrics.reordered:,}  (drawn at the latest step)"),
            ("output lines", f"{output.total:,} (last {len(output.lines):,} kept)"),
            ("events", f"{len(store.events.entries):,}"),
        ]
        ui = getattr(store.system.sample, "ui", None)  # the header shows the same sample
    threads = psutil.Process(os.getpid()).num_threads()
    rows.append(("UI memory", f"{fmt_bytes(ui.rss)}, cpu {ui.cpu_pct:.0f}%, {threads} threads" if ui is not None
                 else f"not sampled yet, {threads} threads"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"[$accent]{k:<{width}}[/]  {escape(v)}" for k, v in rows)


class DiagnosticsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,d,q", "dismiss", "Close", id="diagnostics.close")]

    def __init__(self, store: RunStore, run_dir: str, pid: int | None) -> None:
        super().__init__()
        self.store, self.run_dir, self.pid = store, run_dir, pid

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="diagnostics-body"):
            yield Static("[b]Diagnostics[/b]")
            yield Static(id="diagnostics-text")

    def on_mount(self) -> None:
        self.update()
        self.set_interval(1.0, self.update)

    def update(self) -> None:
        self.query_one("#diagnostics-text", Static).update(describe_diagnostics(self.store, self.run_dir, self.pid))
