"""The run's header line: name, state, step, epoch, speed, elapsed, and what monitoring costs."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from neurotop.tui.store import RunStore
from neurotop.tui.widgets.bars import duration

STATE_STYLE = {
    "running": "$success", "paused": "$warning", "starting": "$secondary", "finished": "$primary",
    "failed": "$error", "stopped": "$warning", "lost": "$error",
}


class RunHeader(Static):
    """One line. Also shows the UI's own CPU and memory (from the system sample, the figure the
    diagnostics show too), so its cost is visible."""

    def __init__(self, show_ui_cost: bool = True, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.show_ui_cost = show_ui_cost
        self._seen: tuple | None = None

    def refresh_from(self, store: RunStore) -> None:
        with store.lock:
            run, counts = store.run, store.intake.counts
            key = (run.version, store.intake.version, store.system.version, int(run.elapsed()), int(run.lag()))
            if key == self._seen:
                return
            self._seen = key
            state = run.state
            parts = [
                f"[b]neurotop[/b]  {escape(run.name or '…')}",
                f"[{STATE_STYLE.get(state, '$foreground')}]● {state}[/]"
                + (" [dim](read-only)[/dim]" if run.read_only else ""),
                f"step {run.step:,}",
            ]
            if run.epoch is not None:
                parts.append(f"epoch {run.epoch:,}")
            if state == "running" and run.steps_per_s > 0:
                parts.append(f"{run.steps_per_s:,.0f} it/s")
            parts.append(duration(run.elapsed()))
            parts.append(f"mon {run.overhead * 100:.1f}%")
            if run.exit_code is not None or (state in ("failed", "lost") and run.detail):
                parts.append(f"[$error]{escape(run.detail)}[/]")
            lag = run.lag()
            if lag > 3.0:
                parts.append(f"[$warning]behind {lag:.0f}s[/]")
            if run.dropped:
                parts.append(f"[$warning]{run.dropped:,} live msgs dropped (journal complete)[/]")
            if run.alert:
                parts.append(f"[$error]⚠ {escape(run.alert)}[/]")
            bad = counts.malformed + counts.unknown
            if bad:
                parts.append(f"[$warning]{bad} bad lines[/]")
            ui = getattr(store.system.sample, "ui", None)
        if self.show_ui_cost and ui is not None:
            parts.append(f"[dim]ui {ui.cpu_pct:.0f}% {ui.rss / 1e6:.0f} MB[/dim]")
        self.update("  ".join(parts))
