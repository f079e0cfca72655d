"""The run's header line: name, state, step, epoch, speed, elapsed, and what monitoring costs.

One line whatever the width: at 80 columns the labels shorten and the least needed figures are
left out whole (never a figure cut in the middle, never a second line).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from textual.markup import escape
from textual.widgets import Static

from neurotop.tui.format import duration, fit, fmt_bytes, one_line
from neurotop.tui.store import RunStore

STATE_STYLE = {
    "running": "$success", "paused": "$warning", "starting": "$secondary", "finished": "$primary",
    "failed": "$error", "stopped": "$warning", "lost": "$error",
}
SEP = "  "
ELASTIC = 16  # the least of an error or an alert kept on a narrow line; spare room goes to them


@dataclass
class Part:
    """One figure of the header: its text, a shorter text for narrow terminals, its style, and
    its rank (0 is kept longest: the state and the step; higher ranks go first when short of room)."""

    text: str
    narrow: str
    rank: int
    style: str = ""
    elastic: bool = False  # a sentence (an error, an alert): on a narrow line, cut to the room left

    def cells(self, narrow: bool) -> int:
        if narrow and self.elastic:
            return min(cell_len(self.text), ELASTIC)
        return cell_len(self.narrow if narrow else self.text)

    def markup(self, narrow: bool, room: int = 0) -> str:
        text = fit(self.text, room).rstrip() if narrow and self.elastic else self.narrow if narrow else self.text
        return f"[{self.style}]{escape(text)}[/]" if self.style else escape(text)


def header_parts(store: RunStore) -> list[Part]:
    """The header's figures in reading order. Call with the store's lock held."""
    run = store.run
    state = run.state
    name = one_line(run.name or "…")
    read_only = " (read-only)" if run.read_only else ""
    parts = [
        Part("neurotop", "", 9, "bold"),
        Part(name, name, 1, elastic=True),
        Part(f"● {state}{read_only}", f"● {state}{' (ro)' if read_only else ''}", 0, STATE_STYLE.get(state, "")),
        Part(f"step {run.step:,}", f"step {run.step:,}", 0),
    ]
    if run.epoch is not None:
        parts.append(Part(f"epoch {run.epoch:,}", f"ep {run.epoch:,}", 3))
    if state == "running" and run.steps_per_s > 0:
        parts.append(Part(f"{run.steps_per_s:,.0f} it/s", f"{run.steps_per_s:,.0f} it/s", 2))
    parts.append(Part(duration(run.elapsed()), duration(run.elapsed()), 2))
    parts.append(Part(f"mon {run.overhead * 100:.1f}%", f"mon {run.overhead * 100:.1f}%", 4))
    if run.exit_code is not None or (state in ("failed", "lost") and run.detail):
        detail = one_line(run.detail)
        parts.append(Part(detail, detail, 1, "$error", elastic=True))
    lag = run.lag()
    if lag > 3.0:
        parts.append(Part(f"behind {lag:.0f}s", f"behind {lag:.0f}s", 1, "$warning"))
    if run.dropped:
        parts.append(Part(f"{run.dropped:,} live msgs dropped (journal complete)", f"{run.dropped:,} dropped", 2,
                          "$warning"))
    if run.alert:
        alert = f"⚠ {one_line(run.alert)}"
        parts.append(Part(alert, alert, 1, "$error", elastic=True))
    bad = store.intake.counts.malformed + store.intake.counts.unknown
    if bad:
        parts.append(Part(f"{bad} bad lines", f"{bad} bad", 3, "$warning"))
    return parts


def fit_header(parts: list[Part], width: int) -> str:
    """The parts as one line of markup that fits ``width`` cells: full labels when they all fit,
    else the narrow labels, leaving out the highest ranks until the rest fits; an error or an
    alert then takes the room that is left."""
    full = [p for p in parts if p.text]
    if _cells(full, False) <= width:
        return SEP.join(p.markup(False) for p in full)
    shown = [p for p in parts if p.narrow]
    while _cells(shown, True) > width and any(p.rank for p in shown):
        del shown[max((i for i, p in enumerate(shown) if p.rank), key=lambda i: (shown[i].rank, i))]
    spare = max(0, width - _cells(shown, True))
    rooms = [p.cells(True) for p in shown]
    for i in reversed(range(len(shown))):  # the error and the alert (last) before the name
        if shown[i].elastic:
            extra = min(spare, cell_len(shown[i].text) - rooms[i])
            rooms[i], spare = rooms[i] + extra, spare - extra
    return SEP.join(p.markup(True, room) for p, room in zip(shown, rooms))


def _cells(parts: list[Part], narrow: bool) -> int:
    return sum(p.cells(narrow) for p in parts) + len(SEP) * max(0, len(parts) - 1)


class RunHeader(Static):
    """One line. Also shows the UI's own CPU and memory (from the system sample, the figure the
    diagnostics show too), so its cost is visible."""

    def __init__(self, show_ui_cost: bool = True, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.show_ui_cost = show_ui_cost
        self._seen: tuple | None = None

    def on_resize(self) -> None:
        self._seen = None

    def refresh_from(self, store: RunStore) -> None:
        with store.lock:
            run = store.run
            key = (run.version, store.intake.version, store.system.version, int(run.elapsed()), int(run.lag()),
                   self.size.width)
            if key == self._seen:
                return
            self._seen = key
            parts = header_parts(store)
            ui = getattr(store.system.sample, "ui", None)  # the diagnostics screen shows the same sample
        if self.show_ui_cost and ui is not None:
            text = f"ui {ui.cpu_pct:.0f}% {fmt_bytes(ui.rss)}"
            parts.append(Part(text, text, 4, "dim"))
        self.update(fit_header(parts, self.content_size.width or 200))
