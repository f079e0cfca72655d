"""Reconstructions: the probe's input images above the model's outputs, side by side.

Drawn with the heatmap's Strip builder and ramp (``GridView``), so an 8×8 digit takes 8 columns
× 4 lines, and is zoomed by a whole factor when the pane has room for every image at that size.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.markup import escape
from textual.strip import Strip

from neurotop.trainer.protocol import Sample
from neurotop.tui.store import RunStore
from neurotop.tui.widgets.heatmap import NONE, GridView, Ramp, grid_strips, shaped_cells

#: Labels for the sample sets the probes send; any other set is labelled by its name.
LABELS = {"inputs": "in", "outputs": "out"}
ORDER = ("inputs", "outputs")
GAP = 1
MAX_ZOOM = 3


def decode_images(msg: Sample) -> np.ndarray:
    """``count`` × height × width uint8; a short message pads with 0 rather than crash."""
    return shaped_cells(msg.cells, msg.count, msg.height, msg.width)


def tile(images: np.ndarray, count: int, zoom: int, gap: int = GAP) -> np.ndarray:
    """The first ``count`` images zoomed and laid in a row, ``NONE`` in the gaps."""
    _, h, w = images.shape
    step = w * zoom + gap
    canvas = np.full((h * zoom, max(0, count * step - gap)), NONE, np.int32)
    for i, image in enumerate(images[:count]):
        canvas[:, i * step:i * step + w * zoom] = image.repeat(zoom, 0).repeat(zoom, 1)
    return canvas


class ReconstructionsPane(GridView):
    """``store.samples`` drawn as rows of small images: inputs above outputs, labelled."""

    DEFAULT_CSS = """
    ReconstructionsPane { height: 1fr; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "Reconstructions"
        self.images: dict[str, np.ndarray] = {}  # name → count × h × w, in drawing order
        self._version = -1
        self._shown: dict[str, Sample] = {}

    def refresh_from(self, store: RunStore) -> None:
        """Take new samples from ``store`` if there are any (cheap when nothing changed)."""
        with store.lock:
            version = store.insights.samples.version
            if version == self._version:
                return
            self._version = version
            samples = dict(store.insights.samples.items)
        names = [n for n in ORDER if n in samples] + [n for n in samples if n not in ORDER]
        if len(names) == len(self._shown) and all(samples[n] is self._shown.get(n) for n in names):
            return
        self._shown = {n: samples[n] for n in names}
        self.images = {n: decode_images(samples[n]) for n in names}
        step = max((s.step for s in samples.values()), default=0)
        self.border_title = escape(f"Reconstructions  step {step:,}") if samples else "Reconstructions"
        self.invalidate()

    def layout_for(self, width: int, height: int, per_line: int) -> tuple[int, int, int]:
        """(zoom, images per row, gap lines between rows) for the pane's size: the largest zoom
        (up to ``MAX_ZOOM``) at which every image fits, else zoom 1 and as many as fit."""
        label_w = max(len(LABELS.get(n, n)) for n in self.images) + 1
        blocks = list(self.images.values())
        count = max(b.shape[0] for b in blocks)
        for zoom in range(MAX_ZOOM, 0, -1):
            row_w = max(count * (b.shape[2] * zoom + GAP) - GAP for b in blocks)
            lines = sum(-(-b.shape[1] * zoom // per_line) for b in blocks)
            if label_w + row_w <= width and lines <= height:
                return zoom, count, 1 if lines + len(blocks) - 1 <= height else 0
        widest = max(b.shape[2] for b in blocks)
        fit = max(1, (width - label_w + GAP) // (widest + GAP))
        lines = sum(-(-b.shape[1] // per_line) for b in blocks)
        return 1, min(count, fit), 1 if lines + len(blocks) - 1 <= height else 0

    def build(self, width: int, height: int, ramp: Ramp | None, base: Style) -> list[Strip] | None:
        if not self.images or width <= 0 or height <= 0:
            return None
        label_w = max(len(LABELS.get(n, n)) for n in self.images) + 1
        zoom, count, gap_lines = self.layout_for(width, height, 1 if ramp is None else 2)
        strips: list[Strip] = []
        for i, (name, images) in enumerate(self.images.items()):
            if i and gap_lines:
                strips.append(Strip.blank(width, base))
            label = Strip([Segment(LABELS.get(name, name).ljust(label_w), base + Style(dim=True))], label_w)
            indent = Strip.blank(label_w, base)
            for j, line in enumerate(grid_strips(tile(images, count, zoom), ramp, base)):
                strips.append(Strip.join([label if j == 0 else indent, line]))
            if len(strips) >= height:
                break
        return strips
