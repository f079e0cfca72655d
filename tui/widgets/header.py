"""The run's header line: name, state, step, epoch, speed, elapsed, and what monitoring costs."""

from __future__ import annotations

import os

import psutil
from rich.markup import escape
from textual.widgets import Static

from neurotop.tui.store import RunStore
from neurotop.tui.widgets.bars import duration

STATE_STYLE = {
    "running": "$success", "paused": "$warning", "starting": "$secondary", "finished": "$primary",
    "failed": "$error", "stopped": "$warning", "lost": "$error",
}


class RunHeader(Static):
    """One line. Also shows the UI's own CPU and memory, so its cost is visible too."""

    def __init__(self, show_ui_cost: bool = True, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.show_ui_cost = show_ui_cost
        self._me = psutil.Process(os.getpid())
        self._me.cpu_percent()
        self._seen: tuple | None = None

    def refresh_from(self, store: RunStore) -> None:
        with store.lock:
            key = (store.versions["header"], store.state, int(store.elapsed()), int(store.lag()))
            if key == self._seen:
                return
            self._seen = key
            state = store.state
            parts = [
                f"[b]neurotop[/b]  {escape(store.name or '…')}",
                f"[{STATE_STYLE.get(state, '$foreground')}]● {state}[/]"
                + (" [dim](read-only)[/dim]" if store.read_only else ""),
                f"step {store.step:,}",
            ]
            if store.epoch is not None:
                parts.append(f"epoch {store.epoch:,}")
            if state == "running" and store.steps_per_s > 0:
                parts.append(f"{store.steps_per_s:,.0f} it/s")
            parts.append(duration(store.elapsed()))
            parts.append(f"mon {store.overhead * 100:.1f}%")
            if store.exit_code is not None or (state in ("failed", "lost") and store.detail):
                parts.append(f"[$error]{escape(store.detail)}[/]")
            lag = store.lag()
            if lag > 3.0:
                parts.append(f"[$warning]behind {lag:.0f}s[/]")
            if store.dropped:
                parts.append(f"[$warning]{store.dropped:,} live msgs dropped (journal complete)[/]")
            if store.alert:
                parts.append(f"[$error]⚠ {escape(store.alert)}[/]")
            bad = store.counts.malformed + store.counts.unknown
            if bad:
                parts.append(f"[$warning]{bad} bad lines[/]")
        if not self.show_ui_cost:
            self.update("  ".join(parts))
            return
        try:
            mem = self._me.memory_info().rss / 1e6
            parts.append(f"[dim]ui {self._me.cpu_percent():.0f}% {mem:.0f} MB[/dim]")
        except psutil.Error:
            pass
        self.update("  ".join(parts))
