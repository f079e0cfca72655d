"""The child's stdout and stderr, as saved in output.log (a traceback shows here).

A tail, drawn with the line API: the newest lines that fit, cropped to the width. Textual's
scrolling ``Log`` re-laid-out the whole screen on every append (measured: ~27 KB written to the
terminal per update at 160×48); this repaints only its own lines. The whole output stays in
``output.log``.
"""

from __future__ import annotations

import collections

from rich.segment import Segment
from textual.strip import Strip
from textual.widget import Widget

from neurotop.tui.store import RunStore

KEEP = 500


class LogPane(Widget):
    """Not focusable: the arrow keys belong to the params and the chart, whatever has focus."""

    can_focus = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: collections.deque[str] = collections.deque(maxlen=KEEP)
        self._written = 0
        self._source = None  # the store's output we follow: another (a restarted run) starts afresh

    def refresh_from(self, store: RunStore) -> None:
        with store.lock:
            output = store.output
            if output is not self._source:
                self._source, self._written = output, 0
                self.lines.clear()
            total = output.total
            if total == self._written:
                return
            fresh = min(total - self._written, len(output.lines), KEEP)
            self.lines.extend(list(output.lines)[-fresh:] if fresh else [])
        self._written = total
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        index = len(self.lines) - height + y
        style = self.rich_style
        if index < 0 or width <= 0:
            return Strip.blank(width, style)
        text = self.lines[index].expandtabs(4)[:width]
        return Strip([Segment(text.ljust(width), style)], width)
