"""Gradient flow: each layer's gradient norm (or update-to-weight ratio) over the run, as a
layers × steps picture with a log-scaled colour, so a vanishing path (cold) or an exploding one
(hot) stands out. ``u`` switches between the two measures.
"""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape

from neurotop.tui.store import RunStore
from neurotop.tui.widgets.health import LayerTimeline, TimelineRow

MEASURES = (("grad_norm", "‖grad‖"), ("update_ratio", "‖Δw‖/‖w‖"))
#: The colour scale never spans less than this many decades (a flat run is not all "hot").
MIN_DECADES = 2.0


def log_scale(values: list[np.ndarray]) -> tuple[float, float]:
    """(lo, hi) in log10 over every positive finite value, at least ``MIN_DECADES`` wide."""
    finite = [np.log10(v[np.isfinite(v) & (v > 0)]) for v in values]
    finite = [f for f in finite if f.size]
    if not finite:
        return -3.0, 0.0
    lo = min(float(f.min()) for f in finite)
    hi = max(float(f.max()) for f in finite)
    if hi - lo < MIN_DECADES:
        mid = (hi + lo) / 2
        lo, hi = mid - MIN_DECADES / 2, mid + MIN_DECADES / 2
    return lo, hi


def to_unit(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values → 0..1 on the log scale [lo, hi]; zero is coldest, NaN stays NaN (no value)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(values)
    out = (logs - lo) / (hi - lo)
    out = np.where(values == 0, 0.0, out)
    return np.clip(out, 0.0, 1.0)


class GradientsPane(Vertical):
    """Gradient norm or update ratio per layer over the run; a compared run's below it."""

    DEFAULT_CSS = """
    GradientsPane { height: auto; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "Gradient flow"
        self.measure_index = 0
        self.timeline = LayerTimeline()
        self.timeline.empty_text = "no gradients yet (InsightProbe.before_step/after_step)"
        self._seen: tuple | None = None
        self.scale = (-3.0, 0.0)

    def compose(self) -> ComposeResult:
        yield self.timeline

    @property
    def measure(self) -> str:
        return MEASURES[self.measure_index][0]

    def cycle_measure(self) -> str:
        self.measure_index = (self.measure_index + 1) % len(MEASURES)
        self._seen = None
        return MEASURES[self.measure_index][1]

    def refresh_from(self, store: RunStore, compare: RunStore | None = None) -> None:
        key = (store.insights.gradients.version, compare and compare.insights.gradients.version, self.measure_index)
        if key == self._seen:
            return
        self._seen = key
        raw = self._series(store, dim=False)
        other = self._series(compare, dim=True) if compare is not None else []
        everything = raw + other
        self.scale = lo, hi = log_scale([values for _, _, values, _, _ in everything])
        last = max((int(steps[-1]) for _, steps, _, _, _ in everything if len(steps)), default=1)
        rows = [self._row(entry, lo, hi) for entry in raw]
        if other:
            rows += [TimelineRow.title(f"≈ compared: {compare.run.name or 'other run'}")]
            rows += [self._row(entry, lo, hi) for entry in other]
        label = MEASURES[self.measure_index][1]
        self.border_title = escape(f"Gradient flow: {label}")
        self.border_subtitle = "u: grad norm / update ratio"
        self.timeline.set_rows(rows, (0, max(last, 1)), f"colour 1e{lo:.0f}…1e{hi:.0f}")

    def _series(self, store: RunStore, dim: bool) -> list[tuple]:
        out = []
        with store.lock:
            flow = store.insights.gradients.value
            if flow is None:
                return out
            history = getattr(flow, self.measure)
            steps, values = history.view()
            latest = flow.latest
            latest_values = getattr(latest, self.measure) if latest is not None else []
            for i, name in enumerate(flow.layers):
                value = latest_values[i] if i < len(latest_values) else np.nan  # None: not finite
                out.append((name, steps, values[:, i].astype(np.float64) if len(steps) else np.zeros(0), value, dim))
        return out

    @staticmethod
    def _row(entry: tuple, lo: float, hi: float) -> TimelineRow:
        name, steps, values, latest, dim = entry
        if latest is None:
            right = "non-finite"
        elif np.isnan(latest):
            right = ""
        else:
            right = f"{latest:.2e}"
        return TimelineRow(name, steps, to_unit(values, lo, hi), right, alert=latest is None, dim=dim)
