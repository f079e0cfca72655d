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
from neurotop.tui.format import one_line
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


def tile_pairs(sets: list[np.ndarray], count: int, gap: int = GAP) -> np.ndarray:
    """Each image beside its counterparts in the other sets (an input beside its output), the
    pairs in a row with a wider gap between them: one row of pictures where there is no room
    for a row per set."""
    height = max(images.shape[1] for images in sets)
    group = sum(images.shape[2] for images in sets) + gap * (len(sets) - 1)
    canvas = np.full((height, max(0, count * (group + 2 * gap) - 2 * gap)), NONE, np.int32)
    for i in range(count):
        x = i * (group + 2 * gap)
        for images in sets:
            _, h, w = images.shape
            if i < images.shape[0]:
                canvas[:h, x:x + w] = images[i]
            x += w + gap
    return canvas


def halve_rows(picture: np.ndarray) -> np.ndarray:
    """Row pairs averaged (``NONE`` stays ``NONE``): one text line per two rows of pixels, as the
    half-block drawing has, so an image keeps its shape (and its height) without colour."""
    if picture.shape[0] % 2:
        picture = np.vstack([picture, picture[-1:]])
    return (picture[0::2] + picture[1::2]) // 2


class ReconstructionsPane(GridView):
    """``store.insights.samples`` drawn as rows of small images: inputs above outputs, labelled; where
    the pane is too low for a row per set, each input beside its output. Shown once a sample
    has come (class ``-live``): a run without probes gives its room to the chart."""

    DEFAULT_CSS = """
    ReconstructionsPane { height: 1fr; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "Reconstructions"
        self.images: dict[str, np.ndarray] = {}  # name → count × h × w, in drawing order
        self.paired = False  # the last build laid each input beside its output
        self._step = 0
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
        self.set_class(bool(samples), "-live")
        names = [n for n in ORDER if n in samples] + [n for n in samples if n not in ORDER]
        if len(names) == len(self._shown) and all(samples[n] is self._shown.get(n) for n in names):
            return
        self._shown = {n: samples[n] for n in names}
        self.images = {n: decode_images(samples[n]) for n in names}
        self._step = max((s.step for s in samples.values()), default=0)
        self._set_title()
        self.invalidate()

    def _set_title(self) -> None:
        if not self.images:
            self.border_title = "Reconstructions"
            return
        sets = " │ ".join(one_line(LABELS.get(n, n)) for n in self.images) if self.paired else ""
        self.border_title = escape(f"Reconstructions  {sets + '  ' if sets else ''}step {self._step:,}")

    def layout_for(self, width: int, height: int) -> tuple[int, int, int]:
        """(zoom, images per row, gap lines between rows) for the pane's size: the largest zoom
        (up to ``MAX_ZOOM``) at which every image fits, else zoom 1 and as many as fit; zoom 0
        when there is not the height for a row per set (then inputs sit beside their outputs)."""
        label_w = max(len(LABELS.get(n, n)) for n in self.images) + 1
        blocks = list(self.images.values())
        count = max(b.shape[0] for b in blocks)
        for zoom in range(MAX_ZOOM, 0, -1):
            row_w = max(count * (b.shape[2] * zoom + GAP) - GAP for b in blocks)
            lines = sum(-(-b.shape[1] * zoom // 2) for b in blocks)
            if label_w + row_w <= width and lines <= height:
                return zoom, count, 1 if lines + len(blocks) - 1 <= height else 0
        lines = sum(-(-b.shape[1] // 2) for b in blocks)
        if lines > height and len(blocks) > 1:
            group = sum(b.shape[2] for b in blocks) + GAP * (len(blocks) - 1)
            return 0, max(1, min(count, (width + 2 * GAP) // (group + 2 * GAP))), 0
        widest = max(b.shape[2] for b in blocks)
        fit = max(1, (width - label_w + GAP) // (widest + GAP))
        return 1, min(count, fit), 1 if lines + len(blocks) - 1 <= height else 0

    def build(self, width: int, height: int, ramp: Ramp | None, base: Style) -> list[Strip] | None:
        if not self.images or width <= 0 or height <= 0:
            return None
        zoom, count, gap_lines = self.layout_for(width, height)
        if self.paired != (zoom == 0):
            self.paired = zoom == 0
            self._set_title()
        if self.paired:
            return self._strips_of(tile_pairs(list(self.images.values()), count), ramp, base)
        label_w = max(len(LABELS.get(n, n)) for n in self.images) + 1
        strips: list[Strip] = []
        for i, (name, images) in enumerate(self.images.items()):
            if i and gap_lines:
                strips.append(Strip.blank(width, base))
            label = Strip([Segment(one_line(LABELS.get(name, name)).ljust(label_w), base + Style(dim=True))], label_w)
            indent = Strip.blank(label_w, base)
            for j, line in enumerate(self._strips_of(tile(images, count, zoom), ramp, base)):
                strips.append(Strip.join([label if j == 0 else indent, line]))
            if len(strips) >= height:
                break
        return strips

    @staticmethod
    def _strips_of(picture: np.ndarray, ramp: Ramp | None, base: Style) -> list[Strip]:
        """Half-blocks in colour; without colour the ASCII ramp on halved rows, so an image
        takes as many lines either way (``NO_COLOR`` showed one row of outputs before)."""
        return grid_strips(picture if ramp is not None else halve_rows(picture), ramp, base)
