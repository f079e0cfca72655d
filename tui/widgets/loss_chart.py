"""The loss chart: every series as a min/max envelope plus its smoothed line, markers for changes.

plotext costs ~5 µs a point and blocks the loop while it builds, so the chart never hands it
more than about two points per column: each series is asked for ``width // 2`` buckets and
drawn as a zigzag through each bucket's min and max (a spike always shows), and the smoothed
value is the EMA computed on the raw stream at ingest, so it does not change with zoom.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.color import Color
from textual_plotext import PlotextPlot

from neurotop.tui.series import SMOOTHING
from neurotop.tui.store import RunStore

MAX_SERIES = 4
MIN_SPAN = 16


def series_order(names: list[str]) -> list[str]:
    """``loss`` first, then other losses, then the rest; at most ``MAX_SERIES``."""
    def key(name: str) -> tuple[int, str]:
        return (0 if name == "loss" else 1 if "loss" in name else 2, name)
    return sorted(names, key=key)[:MAX_SERIES]


class LossChart(PlotextPlot):
    """Train and validation loss against step, zoomable, following the newest steps by default."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log_y = False
        self.smoothing_index = 2  # 0.9
        self.span: int | None = None  # steps in view; None: the whole run
        self.right: int | None = None  # right edge; None: follow the newest step
        self._seen: tuple | None = None
        self._cached: Text | None = None
        self._cache_key: tuple | None = None
        self._last_draw: tuple | None = None
        self._store: RunStore | None = None

    @property
    def smoothing(self) -> float:
        return SMOOTHING[self.smoothing_index]

    # ------------------------------------------------------------------------ view controls
    def toggle_log(self) -> None:
        self.log_y = not self.log_y
        self._seen = None

    def cycle_smoothing(self) -> float:
        self.smoothing_index = (self.smoothing_index + 1) % len(SMOOTHING)
        self._seen = None
        return self.smoothing

    def zoom(self, store: RunStore, factor: float) -> None:
        first, last = self._extent(store)
        full = max(last - first, 1)
        span = (self.span or full) * factor
        self.span = None if span >= full else max(MIN_SPAN, int(span))
        self._seen = None

    def pan(self, store: RunStore, direction: int) -> None:
        first, last = self._extent(store)
        if self.span is None:
            return
        right = (self.right if self.right is not None else last) + direction * self.span // 4
        self.right = None if right >= last else max(first + self.span, right)
        self._seen = None

    def follow(self) -> None:
        self.right = None
        self._seen = None

    def _extent(self, store: RunStore) -> tuple[int, int]:
        with store.lock:
            return store.metrics.extent()

    @property
    def compare(self) -> RunStore | None:
        """The run compared with (the App's ``Compare``), drawn dimmed beside this one."""
        compare = getattr(self.app, "compare", None)
        return compare.store if compare is not None else None

    def window(self, store: RunStore) -> tuple[int | None, int | None]:
        if self.span is None:
            return None, None
        _, last = self._extent(store)
        right = self.right if self.right is not None else last
        return right - self.span, right

    # ------------------------------------------------------------------------------ drawing
    def on_resize(self) -> None:
        """Decimate again for the new width at once, rather than stretch the old points."""
        if self._store is not None:
            self.refresh_from(self._store)

    def refresh_from(self, store: RunStore) -> None:
        """Rebuild the plot when the data, the view or the size changed; else do nothing."""
        self._store = store
        other = self.compare
        key = (store.metrics.version, self.size, self.app.theme, None if other is None else other.metrics.version)
        if key == self._seen:
            return
        self._seen = key
        lo, hi = self.window(store)
        columns = max(8, self.size.width // 2)
        with store.lock:
            series = store.metrics.series
            names = series_order(list(series))
            views = {n: series[n].view(lo, hi, columns, smoothing=self.smoothing) for n in names}
            markers = [m for m in store.metrics.markers if (lo is None or m.step >= lo) and (hi is None or m.step <= hi)]
        compared = {}
        if other is not None:  # the same series of the compared run, in the same window of steps
            with other.lock:
                theirs = other.metrics.series
                compared = {n: theirs[n].view(lo, hi, columns, smoothing=self.smoothing)
                            for n in names if n in theirs and len(theirs[n])}
        self._last_draw = (views, markers[-20:], compared)
        self._draw(*self._last_draw)
        follow = "following" if self.right is None else "panned"
        zoom = "whole run" if self.span is None else f"{self.span:,} steps"
        self.border_subtitle = f"{zoom} · {follow} · smooth {self.smoothing:g}{' · log y' if self.log_y else ''}"
        self._cached = None
        self.refresh()

    def _draw(self, views: dict, markers: list, compared: dict | None = None) -> None:
        plt = self.plt
        plt.clear_data()
        variables = self.app.theme_variables
        background = variables.get("surface", "#000000")
        plt.xlabel("step")
        plt.yscale("log" if self.log_y else "linear")
        for i, (name, view) in enumerate(views.items()):  # the compared run first: this one on top
            other = (compared or {}).get(name)
            if other is not None:
                faint = _blend(variables.get(f"series-{i + 1}", "#4EA8DE"), background, 0.7)
                values = other.smooth if self.smoothing > 0 else other.last
                good = np.isfinite(values) & ((values > 0) if self.log_y else True)
                if good.any():
                    plt.plot(other.steps[good].tolist(), values[good].tolist(), color=faint, marker="braille",
                             label=f"≈{name}")
        for i, (name, view) in enumerate(views.items()):
            colour_name = variables.get(f"series-{i + 1}", "#4EA8DE")
            colour = _rgb(colour_name)
            dim = _blend(colour_name, background, 0.6)  # the raw envelope, under its smoothed line
            ok = np.isfinite(view.lo) & np.isfinite(view.hi)
            if self.log_y:
                ok &= view.lo > 0
            if not ok.any():
                continue
            steps = view.steps[ok]
            # The envelope is each bucket's min and max as points, not a zigzag line: plotext fills
            # every segment of a line point by point, which cost ~0.8 s a frame on a noisy series.
            xs = np.repeat(steps, 2).tolist()
            ys = np.column_stack([view.lo[ok], view.hi[ok]]).ravel().tolist()
            plt.scatter(xs, ys, color=dim, marker="braille")
            line = view.smooth[ok] if self.smoothing > 0 else view.mean[ok]
            good = np.isfinite(line)
            plt.plot(steps[good].tolist(), line[good].tolist(), color=colour, marker="braille", label=name)
        accent = _rgb(variables.get("accent", "#F4A259"))
        for marker in markers:
            plt.vline(marker.step, accent)
        steps = [v.steps for v in [*views.values(), *(compared or {}).values()] if len(v)]
        if steps:
            lo, hi = min(int(s[0]) for s in steps), max(int(s[-1]) for s in steps)
            ticks = sorted({int(round(lo + (hi - lo) * k / 4)) for k in range(5)})
            plt.xticks(ticks, [_step_label(t) for t in ticks])

    def render(self):
        key = (self.size, self.app.theme, self._seen)
        if self._cached is None or key != self._cache_key:
            if self._cache_key is not None and self._last_draw is not None:
                self._draw(*self._last_draw)  # plotext transforms its data in place (log y): start afresh
            try:
                self._cached = super().render()
            except (ArithmeticError, ValueError, IndexError, TypeError) as err:  # plotext on what it cannot scale
                self._cached = Text(f"the chart cannot draw these values ({err}); press l or z to change the view",
                                    style="dim")
            self._cache_key = key
        return self._cached


def _step_label(step: int) -> str:
    """Steps as a person reads them on an axis: 950, 12.5k, 3.2M."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if abs(step) >= size * 10 or (abs(step) >= size and step % size == 0):
            return f"{step / size:.4g}{unit}"
    return str(step)


def _blend(colour: str, background: str, amount: float) -> tuple[int, int, int]:
    try:
        return Color.parse(colour).blend(Color.parse(background), amount).rgb
    except Exception:
        return (128, 128, 128)


def _rgb(value: str) -> tuple[int, int, int]:
    try:
        return Color.parse(value).rgb
    except Exception:
        return (128, 128, 128)
