"""The latent space: a fixed batch projected on its first two principal components (computed in
the child, signs fixed so the picture does not flip), one colour per label, so a person can watch
the digit clusters separate. A few hundred points: plotext builds it in a few milliseconds, and
only when a new projection arrived (or the size or theme changed).
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.color import Color
from textual.markup import escape
from textual_plotext import PlotextPlot

from neurotop.trainer.protocol import Latent, dequantize
from neurotop.tui.format import one_line
from neurotop.tui.store import RunStore

#: The most points drawn (a larger message is sampled evenly): plotext costs ~5 µs a point.
MAX_POINTS = 2000
#: Ten label colours (Tableau 10): distinct on dark and light backgrounds alike.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def decode_latent(msg: Latent) -> tuple[np.ndarray, np.ndarray]:
    """The projection's (x, y) as float arrays: as many points as the message claims and
    carries (a message that claims more than it holds shows what it holds)."""
    n = max(0, min(msg.points, len(msg.x) // 2, len(msg.y) // 2))
    lo = list(msg.lo[:2]) + [0.0, 0.0][len(msg.lo[:2]):]
    scale = list(msg.scale[:2]) + [1.0, 1.0][len(msg.scale[:2]):]
    return dequantize(msg.x, lo[0], scale[0], n, "<u2"), dequantize(msg.y, lo[1], scale[1], n, "<u2")


def label_colour(label: int) -> tuple[int, int, int]:
    return PALETTE[label % len(PALETTE)]


class LatentPlot(PlotextPlot):
    """Scatter of the latest ``Latent`` message, coloured by label."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Latent space"
        self._seen: tuple | None = None
        self._cached: Text | None = None
        self._cache_key: tuple | None = None
        self.shown: Latent | None = None
        self.builds = 0
        self.marker = "braille"  # 2×4 dots a cell: points keep their place; "dot" is bolder

    def refresh_from(self, store: RunStore, compare: RunStore | None = None) -> None:
        key = (store.insights.latent.version, self.size, self.app.theme)
        if key == self._seen:
            return
        self._seen = key
        with store.lock:
            msg = store.insights.latent.value
        self.shown = msg
        plt = self.plt
        plt.clear_data()
        if msg is None or msg.points <= 0:
            self.border_title = "Latent space"
            self.border_subtitle = "waiting for a projection (a model with encode())"
            plt.title("")
        else:
            xs, ys = decode_latent(msg)
            count = len(xs)
            labels = None
            if len(msg.labels) >= len(xs):
                try:
                    labels = np.asarray(msg.labels[: len(xs)], np.int64)
                except (OverflowError, ValueError):
                    labels = None
            if len(xs) > MAX_POINTS:
                keep = np.linspace(0, len(xs) - 1, MAX_POINTS).astype(np.intp)
                xs, ys = xs[keep], ys[keep]
                labels = labels[keep] if labels is not None else None
            if labels is None:
                plt.scatter(xs.tolist(), ys.tolist(), marker=self.marker, color=PALETTE[0])
            else:  # one scatter per colour (at most ten), whatever the number of labels
                colours = labels % len(PALETTE)
                for c in np.unique(colours).tolist():
                    mask = colours == c
                    plt.scatter(xs[mask].tolist(), ys[mask].tolist(), marker=self.marker, color=PALETTE[c])
            ex = list(msg.explained) + [0.0, 0.0]
            plt.xlabel(f"PC1 {ex[0]:.0%}")
            plt.ylabel(f"PC2 {ex[1]:.0%}")
            dims = f"{msg.dims}-d " if msg.dims else ""
            self.border_title = escape(f"Latent space: {dims}{one_line(msg.name or 'latent')}, {count} points, step {msg.step:,}")
            if labels is not None:
                shown = np.unique(labels).tolist()[:12]
                self.border_subtitle = " ".join(f"[{Color(*label_colour(k)).hex}]{k}[/]" for k in shown)
            else:
                self.border_subtitle = ""
        self._cached = None
        self.refresh()

    def render(self):
        key = (self.size, self.app.theme, self._seen)
        if self._cached is None or key != self._cache_key:
            self._cached = super().render()
            self._cache_key = key
            self.builds += 1
        return self._cached
