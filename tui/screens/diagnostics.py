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
        counts = store.counts
        series_bytes = sum(s.nbytes for s in store.series.values())
        points = sum(len(s) for s in store.series.values())
        nonfinite = sum(s.nonfinite for s in store.series.values())
        rows = [
            ("run directory", run_dir),
            ("run pid", str(pid or "-")),
            ("state", f"{store.state} {store.detail}".strip()),
            ("messages decoded", f"{store.messages:,}"),
            ("malformed lines", f"{counts.malformed:,}" + (f"  (last: {counts.last_error})" if counts.last_error else "")),
            ("unknown types", f"{counts.unknown:,}"),
            ("torn lines", f"{counts.torn:,}"),
            ("dropped for the pipe", f"{store.dropped:,}  (the journal has them all)"),
            ("series", f"{len(store.series)}  holding {points:,} points in {fmt_bytes(series_bytes)}"),
            ("non-finite values", f"{nonfinite:,}"),
            ("series not kept", f"{store.refused_series:,}  (past the limit of {MAX_SERIES} names)"),
            ("steps out of order", f"{store.reordered:,}  (drawn at the latest step)"),
            ("output lines", f"{store.output_total:,} (last {len(store.output):,} kept)"),
            ("events", f"{len(store.events):,}"),
        ]
    me = psutil.Process(os.getpid())
    rows.append(("UI memory", f"{fmt_bytes(me.memory_info().rss)}, {me.num_threads()} threads"))
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
