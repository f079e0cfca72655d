"""The loss chart: every series as a min/max envelope plus its smoothed line, markers for changes.

Losses share the top panel; every other metric (accuracy, lr, …) gets a panel of its own below,
on its own y axis and the same steps, so a number between 0 and 1 never squashes a loss (or the
other way round). The legend is in the border title, where it covers no data.

plotext costs ~5 µs a point and blocks the loop while it builds, so the chart never hands it
more than about two points per column: each series is asked for ``width // 2`` buckets and
drawn as a zigzag through each bucket's min and max (a spike always shows), and the smoothed
value is the EMA computed on the raw stream at ingest, so it does not change with zoom.

The y range leaves out the first steps' spike (a loss of 2.3 at step 1 would press a curve that
ends near 0.02 into the bottom row) unless ``o`` asks for every point; the ticks are round numbers.
"""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.color import Color
from textual.reactive import var
from textual.markup import escape
from textual_plotext import PlotextPlot

from neurotop.tui.format import fit_parts, fmt_step, one_line
from neurotop.tui.series import SMOOTHING
from neurotop.tui.store import RunStore
from neurotop.tui.widgets.colours import theme_colour

MAX_LOSSES = 4  # series on the loss panel (the store's MAX_SERIES bounds what is kept at all)
MIN_SPAN = 16
LOSS_ROWS = 8  # the least the loss panel is given before another metric gets a panel
METRIC_ROWS = 8  # a panel of its own for each other metric: title, frame, 4 rows of plot, ticks
EARLY = 0.1  # the first tenth of the steps in view is where a start-up spike is left out
SERIES_FALLBACK = "#4EA8DE"


def is_loss(name: str) -> bool:
    return "loss" in name.lower()


def series_order(names: list[str]) -> list[str]:
    """``loss`` first, then other losses, then the rest."""
    def key(name: str) -> tuple[int, str]:
        return (0 if name == "loss" else 1 if is_loss(name) else 2, name)
    return sorted(names, key=key)


def panels_for(names: list[str], height: int) -> tuple[list[list[str]], int]:
    """Which series go on which panel at this height: the losses together (at most
    ``MAX_LOSSES``), each other metric alone while there is room; and how many were left out."""
    ordered = series_order(names)
    losses = [n for n in ordered if is_loss(n)][:MAX_LOSSES]
    others = [n for n in ordered if not is_loss(n)]
    room = max(0, height - (LOSS_ROWS if losses else 0)) // METRIC_ROWS
    panels = ([losses] if losses else []) + [[n] for n in others[:max(room, 0 if losses else 1)]]
    shown = sum(len(p) for p in panels)
    return panels, len(names) - shown


def panel_heights(panels: list[list[str]], height: int) -> list[int]:
    """Rows for each panel: the other metrics ``METRIC_ROWS`` each and the losses the rest; with
    no loss, the metrics share the height."""
    if is_loss(panels[0][0]):
        return [max(1, height - METRIC_ROWS * (len(panels) - 1))] + [METRIC_ROWS] * (len(panels) - 1)
    share = height // len(panels)
    return [share] * (len(panels) - 1) + [height - share * (len(panels) - 1)]


def nice_ticks(lo: float, hi: float, most: int) -> list[float]:
    """Round values (1, 2, 2.5 or 5 × 10ⁿ apart) inside [lo, hi]: the densest set of at most
    ``most``, but two at least where the range allows (one label is no scale). None for a range
    floats cannot step through (near the float maximum): plotext labels it then."""
    span = hi - lo
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(span)) or most < 1:
        return []
    if span <= 0:
        return [lo]
    candidates = []
    try:
        power = 10.0 ** math.floor(math.log10(span / max(1, most - 1)))
        for factor in (1, 2, 2.5, 5, 10, 20):
            step = factor * power
            first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
            if last - first <= 4 * most:
                candidates.append([round(k * step, 12) for k in range(first, last + 1)])
    except (OverflowError, ValueError, ZeroDivisionError):  # subnormal or near-maximum floats
        return []
    fitting = [c for c in candidates if 2 <= len(c) <= most]
    return fitting[0] if fitting else min((c for c in candidates if len(c) >= 2), key=len, default=[])


def round_ends(lo: float, hi: float) -> list[float]:
    """The fewest round values (1, 2, 2.5 or 5 × 10ⁿ apart, two or three of them) that hold
    [lo, hi] between their ends: 0 and 1 for an accuracy from 0.1 to 0.99, -1 0 1 across zero."""
    try:
        power = 10.0 ** math.floor(math.log10(hi - lo))
        for steps in (1, 2):
            for factor in (1, 2, 2.5, 5, 10, 20, 50):
                step = factor * power
                first = math.floor(lo / step + 1e-9) * step
                if first + steps * step >= hi - 1e-12 * abs(hi):
                    return [round(first + k * step, 12) for k in range(steps + 1)]
    except (OverflowError, ValueError, ZeroDivisionError):
        pass
    return []


def log_ticks(lo: float, hi: float, most: int) -> list[float]:
    """Round values for a log axis: 1, 2 and 5 × 10ⁿ, or only the decades where those are too
    many; a range within a decade gets the linear ticks."""
    if not (lo > 0 and hi > lo and math.isfinite(hi)):
        return nice_ticks(lo, hi, most)
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for multiples in ((1, 2, 5), (1,)):
        ticks = [m * 10.0 ** k for k in decades for m in multiples if lo <= m * 10.0 ** k <= hi]
        if len(ticks) <= most:
            return ticks if len(ticks) >= 2 else nice_ticks(lo, hi, most)
    return ticks[::-(-len(ticks) // most)]


def tick_label(value: float, ticks: list[float]) -> str:
    """A tick with as many decimals as its spacing needs: 0.05, 0.1, 2.5k."""
    if abs(value) >= 1e9:
        return f"{value:.2g}"
    if abs(value) >= 1000 and float(value).is_integer():
        return fmt_step(int(value))
    spacing = min((b - a for a, b in zip(ticks, ticks[1:])), default=abs(value) or 1.0)
    if value and abs(value) < 1e-3:
        return f"{value:.1e}"
    decimals = next((d for d in range(5) if abs(spacing * 10 ** d - round(spacing * 10 ** d)) < 1e-6), 5)
    return f"{value:.{decimals}f}"


def robust_range(views: list, early_until: float | None, log_y: bool) -> tuple[float, float, bool]:
    """(low, high, clipped): the y range of ``views``, leaving out points at steps before
    ``early_until`` when they rise further above everything after it than that spans (a start-up
    spike that would press the rest of the curve into the bottom half)."""
    everything, later = [], []
    for view in views:
        values = np.concatenate([view.lo, view.hi])
        steps = np.concatenate([view.steps, view.steps])
        ok = np.isfinite(values) & ((values > 0) if log_y else True)
        everything.append(values[ok])
        if early_until is not None:
            later.append(values[ok & (steps >= early_until)])
    everything = np.concatenate(everything) if everything else np.zeros(0)
    if not everything.size:
        return math.nan, math.nan, False
    lo, hi = float(everything.min()), float(everything.max())
    rest = np.concatenate(later) if later else np.zeros(0)
    if rest.size:
        top, bottom = float(rest.max()), float(rest.min())
        bound = top + 0.1 * ((top - bottom) or abs(top) or 1.0)
        if hi - top > top - bottom and math.isfinite(bound):  # the spike would take over half the height
            return lo, bound, True
    return lo, hi, False


class LossChart(PlotextPlot):
    """Train and validation loss against step, zoomable, following the newest steps by default;
    other metrics on panels of their own below.

    The view (log y, smoothing, span, right edge, outliers) is reactive: changing any of it redraws
    the chart from the store it last drew, in one place (``_view_changed``)."""

    BINDINGS = [
        Binding("l", "toggle_log", "Log-y", id="chart.log", show=False),
        Binding("s", "smoothing", "Smooth", id="chart.smooth", show=False),
        Binding("z", "zoom(0.5)", "Zoom in", id="chart.zoom_in", show=False),
        Binding("Z,x", "zoom(2.0)", "Zoom out", id="chart.zoom_out", show=False),
        Binding("left", "pan(-1)", "Pan left", id="chart.pan_left", show=False),
        Binding("right", "pan(1)", "Pan right", id="chart.pan_right", show=False),
        Binding("f,end", "follow", "Follow newest", id="chart.follow", show=False),
        Binding("o", "toggle_outliers", "Spike in range", id="chart.outliers", show=False),
    ]

    log_y = var(False)
    show_outliers = var(False)  # False: the first steps' spike is left out of the y range
    smoothing_index = var(2)  # 0.9
    span: var[int | None] = var(None)  # steps in view; None: the whole run
    right: var[int | None] = var(None)  # right edge; None: follow the newest step

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clipped = False  # the y range left the start-up spike out on the last draw
        self.panels: list[list[str]] = []  # the series on each panel, top first, on the last draw
        self._seen: tuple | None = None
        self._cached: Text | None = None
        self._cache_key: tuple | None = None
        self._last_draw: tuple | None = None
        self._store: RunStore | None = None

    @property
    def smoothing(self) -> float:
        return SMOOTHING[self.smoothing_index]

    # ------------------------------------------------------------------------ view controls
    def _view_changed(self) -> None:
        self._seen = None
        if self._store is not None:
            self.refresh_from(self._store)

    watch_log_y = watch_show_outliers = watch_smoothing_index = watch_span = watch_right = _view_changed

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y

    def action_toggle_outliers(self) -> None:
        """``o``: every point in the y range (the start-up spike too), or not."""
        self.show_outliers = not self.show_outliers

    def action_smoothing(self) -> None:
        self.smoothing_index = (self.smoothing_index + 1) % len(SMOOTHING)
        self.notify(f"smoothing {self.smoothing:g}", timeout=2)

    def action_zoom(self, factor: float) -> None:
        if self._store is None:
            return
        first, last = self._extent(self._store)
        full = max(last - first, 1)
        span = (self.span or full) * factor
        self.span = None if span >= full else max(MIN_SPAN, int(span))

    def action_pan(self, direction: int) -> None:
        if self._store is None or self.span is None:
            return
        first, last = self._extent(self._store)
        right = (self.right if self.right is not None else last) + direction * self.span // 4
        self.right = None if right >= last else max(first + self.span, right)

    def action_follow(self) -> None:
        self.right = None

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
            self.panels, hidden = panels_for(list(series), self.size.height)
            names = [n for panel in self.panels for n in panel]
            views = {n: series[n].view(lo, hi, columns, smoothing=self.smoothing) for n in names}
            markers = [m for m in store.metrics.markers if (lo is None or m.step >= lo) and (hi is None or m.step <= hi)]
            first = min((s.first_step for s in series.values() if len(s)), default=None)
        compared = {}
        if other is not None:  # the same series of the compared run, in the same window of steps
            with other.lock:
                theirs = other.metrics.series
                compared = {n: theirs[n].view(lo, hi, columns, smoothing=self.smoothing)
                            for n in names if n in theirs and len(theirs[n])}
        from_start = first is not None and (lo is None or lo <= first)
        self._last_draw = (self.panels, views, markers[-20:], compared, from_start)
        self._draw(*self._last_draw)
        self.border_title = self._legend(names, other if compared else None)
        follow = "following" if self.right is None else "panned"
        zoom = "whole run" if self.span is None else f"{self.span:,} steps"
        # the most needed first (what the user set, then what is left out): a narrow pane keeps those that fit, whole
        notes = [zoom] + (["log y"] if self.log_y else []) + [f"smooth {self.smoothing:g}"]
        if self.clipped:
            notes.append("spike clipped: o")
        if hidden:
            notes.append(f"+{hidden} series not shown")
        notes.append(follow)
        self.border_subtitle = fit_parts(notes, max(0, self.outer_size.width - 6), " · ")
        self._cached = None
        self.refresh()

    def _colour(self, index: int) -> Color:
        return theme_colour(self.app, f"series-{index + 1}", SERIES_FALLBACK)

    def _legend(self, names: list[str], compared: RunStore | None) -> str:
        """The border title: each series' name in its colour (a legend that covers no data), and
        the compared run, drawn faint."""
        if not names:
            return "Loss"
        keys = [f"[{self._colour(i).hex}]━[/] {escape(one_line(name))}" for i, name in enumerate(names)]
        if compared is not None:
            keys.append(f"[dim]≈ {escape(one_line(compared.run.name or 'compared'))}[/dim]")
        return "Loss  " + "  ".join(keys)

    def _draw(self, panels: list[list[str]], views: dict, markers: list, compared: dict, from_start: bool) -> None:
        plt = self.plt
        plt.clf()
        self.clipped = False
        if not panels:
            return
        width, height = self.size
        background = theme_colour(self.app, "surface", "#000000")
        accent = theme_colour(self.app, "accent", "#F4A259").rgb
        heights = panel_heights(panels, height)
        if len(panels) > 1:
            plt.subplots(len(panels), 1)
        shown = [v for v in [*views.values(), *compared.values()] if len(v)]
        x_lo = min((int(v.steps[0]) for v in shown), default=0)
        x_hi = max((int(v.steps[-1]) for v in shown), default=1)
        x_ticks = nice_ticks(x_lo, x_hi, max(2, min(7, width // 10)))
        index = {name: i for i, name in enumerate(n for panel in panels for n in panel)}
        y_ticks = []  # (panel, ticks, labels): labels are padded to one width, so the panels' x axes line up
        for p, names in enumerate(panels):
            sub = plt.subplot(p + 1, 1) if len(panels) > 1 else plt
            rows = heights[p]
            if len(panels) > 1:
                sub.plotsize(width, rows)
            log_y = self.log_y and is_loss(names[0])
            sub.yscale("log" if log_y else "linear")
            if not is_loss(names[0]):
                sub.title(one_line(names[0]))
            for name in names:  # the compared run first: this one on top
                other = compared.get(name)
                if other is not None:
                    faint = self._colour(index[name]).blend(background, 0.7).rgb
                    values = other.smooth if self.smoothing > 0 else other.last
                    good = np.isfinite(values) & ((values > 0) if log_y else True)
                    if good.any():
                        sub.plot(other.steps[good].tolist(), values[good].tolist(), color=faint, marker="braille")
            for name in names:
                view = views[name]
                colour = self._colour(index[name])
                dim = colour.blend(background, 0.6).rgb  # the raw envelope, under its smoothed line
                ok = np.isfinite(view.lo) & np.isfinite(view.hi)
                if log_y:
                    ok &= view.lo > 0
                if not ok.any():
                    continue
                steps = view.steps[ok]
                # The envelope is each bucket's min and max as points, not a zigzag line: plotext fills
                # every segment of a line point by point, which cost ~0.8 s a frame on a noisy series.
                xs = np.repeat(steps, 2).tolist()
                ys = np.column_stack([view.lo[ok], view.hi[ok]]).ravel().tolist()
                sub.scatter(xs, ys, color=dim, marker="braille")
                line = view.smooth[ok] if self.smoothing > 0 else view.mean[ok]
                good = np.isfinite(line)
                sub.plot(steps[good].tolist(), line[good].tolist(), color=colour.rgb, marker="braille")
            for marker in markers:
                sub.vline(marker.step, accent)
            last = p == len(panels) - 1
            # the rows between the frame's lines: less the frame, the step labels, a title, the axis name
            plot_rows = rows - 3 - (0 if is_loss(names[0]) else 1) - (1 if last else 0)
            y_ticks.append((sub, *self._scale_y(sub, [views[n] for n in names], plot_rows, log_y,
                                                from_start and not self.show_outliers, x_lo + EARLY * (x_hi - x_lo))))
            sub.xlim(x_lo, x_hi)
            sub.xticks(x_ticks, [tick_label(t, x_ticks) for t in x_ticks] if last else [""] * len(x_ticks))
            if last:
                sub.xlabel("step")
        width = max((len(label) for _, _, labels in y_ticks for label in labels), default=0)
        for sub, ticks, labels in y_ticks:
            if ticks:
                sub.yticks(ticks, [label.rjust(width) for label in labels])

    def _scale_y(self, sub, views: list, plot_rows: int, log_y: bool, leave_out_spike: bool,
                 early_until: float) -> tuple[list[float], list[str]]:
        """Sets the y range; returns round ticks at least two rows apart (plotext drops one of two
        labels that land on a row, and which one changes from run to run) with their labels."""
        lo, hi, clipped = robust_range(views, early_until if leave_out_spike else None, log_y)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return [], []
        self.clipped = self.clipped or clipped
        most = max(2, min(6, (plot_rows + 1) // 2))
        ticks = log_ticks(lo, hi, most) if log_y else nice_ticks(lo, hi, most)
        if not log_y and len(ticks) >= 2 and (ticks[1] - ticks[0]) / (hi - lo) * (plot_rows - 1) < 2:
            ticks = round_ends(lo, hi)  # too low a panel for these: the axis widens to round ends
            if ticks:
                lo, hi, clipped = ticks[0], ticks[-1], True
        if clipped:
            sub.ylim(lo, hi)
        if len(ticks) < 2:
            return [], []
        return ticks, [f"{t:g}" if log_y else tick_label(t, ticks) for t in ticks]  # log: 0.01, 0.1, 1

    def render(self):
        key = (self.size, self.app.theme, self._seen, self.show_outliers)
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
