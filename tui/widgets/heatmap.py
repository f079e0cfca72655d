"""Heatmaps through Textual's line API: one widget, cached Strips, two data rows per cell.

A grid is drawn with upper half-blocks ``▀`` (foreground = the upper data row, background = the
lower), so a terminal cell carries two data rows and pixels come out roughly square. Colours come
from a 256-step ramp between the theme's ``heat-cold``, ``heat-mid`` and ``heat-hot``. With
``NO_COLOR`` the ramp is ASCII (`` .:-=+*#%@``), one data row per line, so the picture survives.

Strips are rebuilt only when the data, the size, the theme or the widget's style changes: a
repaint is a list look-up, and a rebuild costs the widget's size, never the data's.
"""

from __future__ import annotations

from functools import lru_cache
import numpy as np
from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.app import App
from textual.strip import Strip
from textual.widget import Widget

from neurotop.tui.widgets.colours import parse_colour, theme_colour

UPPER = "▀"
LOWER = "▄"
ASCII_RAMP = " .:-=+*#%@"
EMPTY_TEXT = "waiting for the first snapshot…"
#: The ramp when a theme does not define it (viridis' ends and middle: legible on dark and light).
FALLBACK_HEAT = {"heat-cold": "#440154", "heat-mid": "#21918C", "heat-hot": "#FDE725"}
#: The largest integer zoom: beyond it blocks stop looking like data and start looking like tiles.
MAX_ZOOM = 8
#: A cell with no data (gaps between images, the missing half of an odd last row).
NONE = -1

# NONE maps to a space, 0..255 to the ramp: indexed by value + 1.
_ASCII_LUT = np.frombuffer(
    (" " + "".join(ASCII_RAMP[v * len(ASCII_RAMP) // 256] for v in range(256))).encode(), np.uint8
)


class Ramp:
    """A theme's colour ramp as tables, so a cell's style is a look-up, not colour arithmetic.

    ``colors`` and ``styles`` have 256 entries (value → colour / foreground style); the style of a
    half-block cell (two values) is memoised per pair, since a picture reuses few pairs.
    """

    def __init__(self, cold: str, mid: str, hot: str) -> None:
        anchors = np.array([parse_colour(c, f).rgb for c, f in zip((cold, mid, hot), FALLBACK_HEAT.values())], float)
        t = np.arange(256) / 255.0
        rgb = np.empty((256, 3))
        for k in range(3):  # cold → mid over the lower half, mid → hot over the upper
            rgb[:, k] = np.interp(t, [0.0, 0.5, 1.0], anchors[:, k])
        rgb = np.clip(np.rint(rgb), 0, 255).astype(int)
        self.colors: list[RichColor] = [RichColor.from_rgb(*map(int, c)) for c in rgb]
        self.styles: list[Style] = [Style(color=c) for c in self.colors]
        self._pairs: dict[Style, dict[int, tuple[str, Style]]] = {}  # per widget style

    @classmethod
    def for_app(cls, app: App) -> "Ramp":
        """The ramp of the app's current theme."""
        return _ramp(*(theme_colour(app, name, fallback).hex for name, fallback in FALLBACK_HEAT.items()))

    def cell(self, top: int, bottom: int, base: Style) -> tuple[str, Style]:
        """Character and style for a cell showing ``top`` over ``bottom`` on a widget whose style
        is ``base`` (``NONE`` = no data: the widget's background shows)."""
        pairs = self._pairs.get(base)
        if pairs is None:
            if len(self._pairs) >= 8:  # styles come and go (focus, theme): keep this bounded
                self._pairs.clear()
            pairs = self._pairs[base] = {}
        key = (top + 1) * 257 + bottom + 1
        found = pairs.get(key)
        if found is None:
            bg = base.bgcolor
            if top >= 0:
                char, style = UPPER, Style(color=self.colors[top], bgcolor=self.colors[bottom] if bottom >= 0 else bg)
            elif bottom >= 0:
                char, style = LOWER, Style(color=self.colors[bottom], bgcolor=bg)
            else:
                char, style = " ", Style(bgcolor=bg)
            found = pairs[key] = char, base + style
        return found


@lru_cache(maxsize=16)
def _ramp(cold: str, mid: str, hot: str) -> Ramp:
    return Ramp(cold, mid, hot)


def shaped_cells(data: bytes, *shape: int) -> np.ndarray:
    """Quantized cells in ``shape``; a snapshot whose bytes do not match its shape (only a
    hand-built one: decoding refuses them) is drawn as all zeros of that shape when small,
    and as nothing when it claims more than it could ever carry."""
    shape = tuple(max(0, int(n)) for n in shape)
    need = int(np.prod(shape))
    cells = np.frombuffer(data, np.uint8)
    if cells.size == need:
        return cells.reshape(shape)
    if need > 4 * max(cells.size, 1 << 16):
        return np.zeros(tuple(0 for _ in shape), np.uint8)
    out = np.zeros(need, np.uint8)
    out[: min(need, cells.size)] = cells[:need]
    return out.reshape(shape)


#: 0..255 onto 32 evenly spaced levels that keep both ends (0 stays coldest, 255 hottest).
_LEVELS = np.round(np.round(np.arange(256) * 31 / 255) * 255 / 31).astype(np.int32)


def grid_strips(grid: np.ndarray, ramp: Ramp | None, base: Style | None = None) -> list[Strip]:
    """Turn a grid of values 0..255 (or ``NONE``) into Strips, one cell per column.

    With a ``ramp``: half-blocks, two grid rows per Strip. Without (no colour): the ASCII ramp,
    one grid row per Strip. Runs of equal cells become one Segment, so zoomed data stays cheap.
    ``base`` is the widget's style (its background shows through ``NONE`` cells).
    """
    base = base or Style()
    grid = np.asarray(grid, dtype=np.int32)
    if grid.ndim != 2 or grid.size == 0:
        return []
    if ramp is None:
        return [Strip([Segment(_ASCII_LUT[row + 1].tobytes().decode(), base)], len(row)) for row in grid]
    # 32 colour levels, not 256: the eye cannot tell the difference, but neighbouring cells then
    # often share a style and merge into one segment, which halves the bytes sent to the terminal.
    grid = np.where(grid == NONE, NONE, _LEVELS[np.clip(grid, 0, 255)])
    if grid.shape[0] % 2:
        grid = np.vstack([grid, np.full((1, grid.shape[1]), NONE, np.int32)])
    top, bottom = grid[0::2], grid[1::2]
    keys = (top + 1) * 257 + bottom + 1
    strips = []
    width = grid.shape[1]
    for t_row, b_row, k_row in zip(top, bottom, keys):
        starts = np.concatenate(([0], np.flatnonzero(np.diff(k_row)) + 1))
        ends = np.append(starts[1:], width)
        segments = []
        for s, e in zip(starts.tolist(), ends.tolist()):
            char, style = ramp.cell(int(t_row[s]), int(b_row[s]), base)
            segments.append(Segment(char * (e - s), style))
        strips.append(Strip(segments, width))
    return strips


def center(strip: Strip, width: int, base: Style) -> Strip:
    """``strip`` centred in ``width`` cells, padded in the widget's style (Textual's own
    ``text_align`` pads unstyled, which no longer inherits the background)."""
    left = max(0, width - strip.cell_length) // 2
    return Strip.join([Strip.blank(left, base), strip]).adjust_cell_length(width, base)


def fit_indices(n: int, space: int, max_zoom: int = MAX_ZOOM) -> np.ndarray:
    """Source indices that lay ``n`` data cells into ``space`` screen cells.

    Smaller data is zoomed by a whole factor (every cell the same size: nothing looks thicker
    than its neighbour); larger data is sampled, nearest neighbour, at bin centres.
    """
    if n <= 0 or space <= 0:
        return np.zeros(0, np.intp)
    if n <= space:
        return np.repeat(np.arange(n), max(1, min(max_zoom, space // n)))
    return ((2 * np.arange(space) + 1) * n) // (2 * space)


def resample(grid: np.ndarray, rows: int, cols: int, max_zoom: int = MAX_ZOOM) -> np.ndarray:
    """``grid`` laid into at most ``rows`` × ``cols`` cells (see ``fit_indices``)."""
    return grid[np.ix_(fit_indices(grid.shape[0], rows, max_zoom), fit_indices(grid.shape[1], cols, max_zoom))]


class GridView(Widget):
    """The shared machinery of grid panes: the theme's ramp, a Strip cache, an empty state.

    Subclasses implement ``build(width, height, ramp, base)`` (``ramp`` is ``None`` without
    colour) and call ``invalidate()`` when their data changes.
    """

    empty_text = EMPTY_TEXT

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._strips: list[Strip] | None = None
        self._cache_key: tuple | None = None
        self._ramp: Ramp | None = None
        #: How often the Strips were rebuilt (for tests and for judging the cost).
        self.builds = 0

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        self._ramp = None
        self.invalidate()

    @property
    def ramp(self) -> Ramp | None:
        """The current theme's ramp, or ``None`` when colours are off (``NO_COLOR``)."""
        if getattr(self.app, "no_color", False):
            return None
        if self._ramp is None:
            self._ramp = Ramp.for_app(self.app)
        return self._ramp

    def invalidate(self) -> None:
        """Drop the cached Strips; the next paint rebuilds them."""
        self._strips = None
        self.refresh()

    def build(self, width: int, height: int, ramp: Ramp | None, base: Style) -> list[Strip] | None:
        """The widget's lines, or ``None`` for the empty state."""
        raise NotImplementedError

    def _lines(self, width: int, height: int, base: Style) -> list[Strip]:
        key = (width, height, base, self.app.theme, getattr(self.app, "no_color", False))
        if self._strips is None or key != self._cache_key:
            self._cache_key = key
            self.builds += 1
            strips = self.build(width, height, self.ramp, base)
            if strips is None:
                strips = [Strip.blank(width, base)] * height
                if height:
                    text = self.empty_text[:width]
                    strips[height // 2] = center(Strip([Segment(text, base + Style(dim=True))]), width, base)
            self._strips = [s.adjust_cell_length(width, base) for s in strips[:height]]
        return self._strips

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        base = self.visual_style.rich_style
        lines = self._lines(width, height, base)
        return lines[y] if 0 <= y < len(lines) else Strip.blank(width, base)


class Heatmap(GridView):
    """A uint8 grid (rows × cols, 0..255), zoomed or sampled to the widget, centred across it,
    with an optional one-line dim caption right under the picture."""

    DEFAULT_CSS = """
    Heatmap { height: 1fr; min-height: 2; }
    """

    def __init__(self, *, max_zoom: int = MAX_ZOOM, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.max_zoom = max_zoom
        self.grid: np.ndarray | None = None
        self.caption = ""

    def set_data(self, grid: np.ndarray | None, caption: str = "") -> None:
        """Show ``grid`` (``None``: the empty state) and ``caption``; repaints on the next frame."""
        self.grid = None if grid is None else np.asarray(grid)
        self.caption = caption
        self.invalidate()

    def build(self, width: int, height: int, ramp: Ramp | None, base: Style) -> list[Strip] | None:
        grid = self.grid
        if grid is None or grid.ndim != 2 or grid.size == 0 or width <= 0 or height <= 0:
            return None
        rows = height - 1 if self.caption and height > 1 else height
        per_line = 1 if ramp is None else 2
        picture = resample(grid, rows * per_line, width, self.max_zoom)
        strips = [center(s, width, base) for s in grid_strips(picture, ramp, base)]
        if self.caption:
            strips.append(center(Strip([Segment(self.caption[:width], base + Style(dim=True))]), width, base))
        return strips
