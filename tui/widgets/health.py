"""Neuron health over the run: a strip per layer (rows = layers, columns = steps, colour = the
dead fraction), and one layer's units over time (the activation history).

Both draw through the shared half-block renderer (``neurotop.tui.widgets.heatmap``), build their Strips
only when ``store.insights.health.version`` moved (or the size, theme or view changed), and cost
the pane's size, never the run's length: the store keeps a bounded ``History`` per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape
from textual.strip import Strip

from neurotop.tui.format import fit, fit_parts, fmt_step, one_line
from neurotop.tui.store import RunStore
from neurotop.tui.widgets.colours import theme_colour
from neurotop.tui.widgets.heatmap import NONE, GridView, Heatmap, Ramp, grid_strips

LABEL_WIDTH = 12
RIGHT_WIDTH = 10
#: What the health strip can colour by: (key in LayerHealth.SCALARS, title, right-hand format).
HEALTH_METRICS = (("dead", "dead fraction", "{:.0%} dead"), ("saturated", "saturated fraction", "{:.0%} sat"),
                  ("signal", "mean |activation|", "|a| {:.3g}"))


@dataclass
class TimelineRow:
    """One labelled row of a layers × steps picture. ``values`` are 0..1 (NaN: no value)."""

    label: str
    steps: np.ndarray
    values: np.ndarray
    right: str = ""
    alert: bool = False
    dim: bool = False
    separator: bool = False  # a title line (e.g. the compared run's name), no picture

    @classmethod
    def title(cls, text: str) -> TimelineRow:
        return cls(text, np.zeros(0, np.int64), np.zeros(0), separator=True)


def step_columns(steps: np.ndarray, values: np.ndarray, lo: int, hi: int, width: int) -> np.ndarray:
    """``values`` (one per step, ascending steps) laid on ``width`` columns spanning steps
    [lo, hi]: each column shows the latest value at or before its right edge (NaN before the
    first snapshot and after the last). Two runs laid on the same [lo, hi] line up by step."""
    if width <= 0:
        return np.zeros(0)
    if len(steps) == 0:
        return np.full(width, np.nan)
    span = max(hi - lo, 1)
    edges = lo + (np.arange(1, width + 1) * span) / width
    index = np.searchsorted(steps, edges, side="right") - 1
    out = np.where(index >= 0, values[np.clip(index, 0, None)], np.nan)
    out[edges - span / width > steps[-1]] = np.nan  # past this run's last step: nothing to show
    return out


class LayerTimeline(GridView):
    """Rows of (label, picture over steps, right-hand text) on one step axis, one line each,
    and an axis caption. Values are 0..1, coloured through the theme's heat ramp."""

    DEFAULT_CSS = """
    LayerTimeline { height: auto; min-height: 2; }
    """
    empty_text = "waiting for the first snapshot…"

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.rows: list[TimelineRow] = []
        self.span = (0, 1)
        self.caption = ""

    def set_rows(self, rows: list[TimelineRow], span: tuple[int, int], caption: str = "") -> None:
        grew = len(rows) != len(self.rows)
        self.rows, self.span, self.caption = rows, span, caption
        self.invalidate()
        if grew:
            self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(2, len(self.rows) + (1 if self.caption else 0))

    def build(self, width: int, height: int, ramp: Ramp | None, base: Style) -> list[Strip] | None:
        if not self.rows or width < LABEL_WIDTH + RIGHT_WIDTH + 4:
            return None
        cols = width - LABEL_WIDTH - RIGHT_WIDTH - 2
        lo, hi = self.span
        dim = base + Style(dim=True)
        alert = base + Style(bold=True, color=theme_colour(self.app, "error", "#EE6055").hex)
        strips: list[Strip] = []
        budget = height - (1 if self.caption else 0)
        for i, row in enumerate(self.rows):
            if len(strips) >= budget:
                break
            if len(strips) == budget - 1 and i < len(self.rows) - 1:
                strips.append(Strip([Segment(f"  … {len(self.rows) - i} more", dim)]))
                break
            if row.separator:
                strips.append(Strip([Segment(fit(one_line(row.label), width), dim)]))
                continue
            label_style = alert if row.alert else (dim if row.dim else base)
            values = step_columns(row.steps, row.values, lo, hi, cols)
            cells = np.where(np.isnan(values), NONE, np.clip(np.rint(np.nan_to_num(values) * 255), 0, 255))
            cells = cells.astype(np.int32)
            grid = cells[None, :] if ramp is None else np.vstack([cells, cells])
            picture = grid_strips(grid, ramp, base)[0]
            if row.dim:
                picture = picture.apply_style(Style(dim=True))
            strips.append(Strip.join([
                Strip([Segment(fit(one_line(row.label), LABEL_WIDTH - 1) + " ", label_style)]),
                picture,
                Strip([Segment(" " + fit(row.right, RIGHT_WIDTH + 1, left=False), label_style)]),
            ]))
        if self.caption:  # the step axis under the pictures, then the caption where it fits
            left = f"{'':{LABEL_WIDTH}}step {fmt_step(lo)}"
            right = fmt_step(hi)
            gap = max(1, LABEL_WIDTH + cols - len(left) - len(right))
            strips.append(Strip([Segment(fit(f"{left}{' ' * gap}{right}   {self.caption}", width), dim)]))
        return strips


class HealthPane(Vertical):
    """Neuron health per layer over the run; a compared run's layers below, on the same steps."""

    DEFAULT_CSS = """
    HealthPane { height: auto; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "Neuron health"
        self.metric_index = 0
        self.timeline = LayerTimeline()
        self._seen: tuple | None = None

    def compose(self) -> ComposeResult:
        yield self.timeline

    @property
    def metric(self) -> str:
        return HEALTH_METRICS[self.metric_index][0]

    def cycle_metric(self) -> str:
        self.metric_index = (self.metric_index + 1) % len(HEALTH_METRICS)
        self._seen = None
        return HEALTH_METRICS[self.metric_index][1]

    def refresh_from(self, store: RunStore, compare: RunStore | None = None) -> None:
        key = (store.insights.health.version, id(store.run.hello), compare and compare.insights.health.version,
               self.metric_index)
        if key == self._seen:
            return
        self._seen = key
        key_index = ("dead", "saturated", "mean", "std", "signal").index(self.metric)
        rows, last = self._rows(store, key_index, dim=False)
        if compare is not None:
            other, other_last = self._rows(compare, key_index, dim=True)
            if other:
                rows += [TimelineRow.title(f"≈ compared: {compare.run.name or 'other run'}")] + other
                last = max(last, other_last)
        if self.metric == "signal":  # relative: scale by the largest mean |activation| in view
            finite = [r.values[np.isfinite(r.values)] for r in rows]
            peak = max((float(v.max()) for v in finite if v.size), default=1.0) or 1.0
            for r in rows:
                r.values = r.values / peak
        _, title, _ = HEALTH_METRICS[self.metric_index]
        with store.lock:
            dead = sorted(store.insights.health.dead)
        self.border_title = escape("Neuron health" + (f"  ⚠ dead: {one_line(', '.join(dead))}" if dead else ""))
        self.border_subtitle = f"m: {title}"
        scale = "colour 0…max" if self.metric == "signal" else "colour 0…100%"
        self.timeline.set_rows(rows, (0, max(last, 1)), scale)

    def _rows(self, store: RunStore, key_index: int, dim: bool) -> tuple[list[TimelineRow], int]:
        fmt = HEALTH_METRICS[self.metric_index][2]
        rows, last = [], 0
        with store.lock:
            health = store.insights.health
            for name in layer_order(store, list(health.layers)):
                layer = health.layers[name]
                steps, values = layer.scalars.view()
                if not len(steps):
                    continue
                last = max(last, int(steps[-1]))
                msg = layer.latest
                latest = [msg.dead / max(msg.units, 1), msg.saturated / max(msg.units, 1), msg.mean, msg.std,
                          msg.signal][key_index]
                rows.append(TimelineRow(name, steps, values[:, key_index].astype(np.float64), fmt.format(latest),
                                        alert=name in health.dead and not dim, dim=dim))
        return rows, last


class UnitHistoryPane(Vertical):
    """One layer's units (rows) over its snapshots (columns): each unit's mean activation on the
    probe's batch. Units sort by their mean or by their spread (how much they vary between
    inputs: the ones that carry information)."""

    DEFAULT_CSS = """
    UnitHistoryPane { height: 1fr; }
    """
    SORTS = ("mean", "variance", "unit")

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "Activation history"
        self.current_layer: str | None = None
        self.layer_names: list[str] = []
        self.sort_index = 0
        self.heatmap = Heatmap(max_zoom=4)
        self._seen: tuple | None = None
        self.unit_order: np.ndarray = np.zeros(0, np.intp)  # unit rows top to bottom, as drawn

    def compose(self) -> ComposeResult:
        yield self.heatmap

    @property
    def sort(self) -> str:
        return self.SORTS[self.sort_index]

    def cycle_sort(self) -> str:
        self.sort_index = (self.sort_index + 1) % len(self.SORTS)
        self._seen = None
        return self.sort

    def step_layer(self, store: RunStore, delta: int) -> str | None:
        with store.lock:
            self.layer_names = layer_order(store, list(store.insights.health.layers))
        if not self.layer_names:
            return None
        index = self.layer_names.index(self.current_layer) if self.current_layer in self.layer_names else 0
        self.current_layer = self.layer_names[(index + delta) % len(self.layer_names)]
        self._seen = None
        self.refresh_from(store)
        return self.current_layer

    def refresh_from(self, store: RunStore, compare: RunStore | None = None) -> None:
        key = (store.insights.health.version, self.current_layer, self.sort_index)
        if key == self._seen:
            return
        self._seen = key
        with store.lock:
            self.layer_names = layer_order(store, list(store.insights.health.layers))
            if self.current_layer not in self.layer_names:
                self.current_layer = self.layer_names[0] if self.layer_names else None
            layer = store.insights.health.layers.get(self.current_layer) if self.current_layer else None
            if layer is None or layer.units is None or layer.latest is None:
                self.heatmap.set_data(None)
                return
            steps, grid = layer.units.view()  # columns × units
            spreads = layer.unit_spreads.copy()
            msg = layer.latest
        if not len(steps):
            self.heatmap.set_data(None)
            return
        grid = grid.T  # units × columns
        latest = grid[:, -1]
        if self.sort == "mean":
            order = np.argsort(-np.nan_to_num(latest, nan=-np.inf), kind="stable")
        elif self.sort == "variance" and len(spreads) == grid.shape[0]:
            order = np.argsort(-spreads, kind="stable")
        else:
            order = np.arange(grid.shape[0])
        self.unit_order = order
        grid = grid[order]
        finite = np.isfinite(grid)
        lo = float(grid[finite].min()) if finite.any() else 0.0
        hi = float(grid[finite].max()) if finite.any() else 1.0
        scale = 255 / (hi - lo) if hi > lo else 0.0
        cells = np.where(finite, np.clip(np.rint((np.nan_to_num(grid) - lo) * scale), 0, 255), NONE)
        rows = msg.rows
        grouped = f" in {rows} groups" if msg.units > rows else ""
        position = self.layer_names.index(self.current_layer) + 1
        nav = f"◂ {position}/{len(self.layer_names)} ▸" if len(self.layer_names) > 1 else ""
        head = " ".join(p for p in ("Activation history", nav, one_line(self.current_layer)) if p)
        room = max(0, self.outer_size.width - 7 - len(head)) if self.outer_size.width else 200
        more = fit_parts([f"({msg.units:,} units{grouped})"], room)  # the selector and the name stay whole
        self.border_title = escape(f"{head} {more}".rstrip())
        self.border_subtitle = f"[ ] layer · s: sort by {self.sort}"
        caption = f"steps {fmt_step(int(steps[0]))}…{fmt_step(int(steps[-1]))}  mean {lo:.3g} … {hi:.3g}"
        self.heatmap.set_data(cells.astype(np.int32), caption)


def layer_order(store: RunStore, names: list[str]) -> list[str]:
    """Layers in model order when the hello names them, else in order of arrival."""
    hello = store.run.hello
    model = [layer.name for layer in hello.model] if hello is not None else []
    rank = {name: i for i, name in enumerate(model)}
    return sorted(names, key=lambda n: (0, rank[n], 0) if n in rank else (1, 0, names.index(n)))
