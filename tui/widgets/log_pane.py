"""The child's stdout and stderr, as saved in output.log (a traceback shows here).

Drawn with the line API: the newest lines that fit, long ones wrapped at a blank (or cut across
when a word is wider than the pane). Textual's scrolling ``Log`` re-laid-out the whole screen on
every append (measured: ~27 KB written to the terminal per update at 160×48); this repaints only
its own lines, from Strips rebuilt only when the lines, the view or the size change. It keeps the
last ``KEEP`` lines; the whole output stays in ``output.log``.

With focus (a click, or Tab): ``PgUp``/``PgDn`` scroll back and forth, ``Home`` goes to the oldest
line kept and ``End`` back to following the newest; ``/`` searches (type, Enter), ``n``/Enter and
``N`` go to the next and previous match, ``Esc`` ends the search. New lines never move what you
are reading back: the view stays on its lines and the subtitle counts what came in below.
"""

from __future__ import annotations

import collections

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.markup import escape
from textual.strip import Strip
from textual.widget import Widget

from neurotop.tui.format import fit_parts, printable, wrap
from neurotop.tui.store import RunStore

KEEP = 2000
TAB = 4


class LogPane(Widget):
    """Focusable for its own keys; the ones it does not use (arrows, +/-, letters other than
    ``n``/``N`` during a search) go on to the params and the chart as before."""

    can_focus = True

    BINDINGS = [
        Binding("pageup", "page(-1)", "Page up", id="output.page_up", show=False),
        Binding("pagedown", "page(1)", "Page down", id="output.page_down", show=False),
        Binding("home", "oldest", "Oldest line", id="output.oldest", show=False),
        Binding("end", "newest", "Newest line", id="output.newest", show=False),
        Binding("slash", "search", "Search", id="output.search"),
        Binding("n,enter", "next_match(1)", "Next", id="output.next_match"),
        Binding("N", "next_match(-1)", "Previous", id="output.previous_match", show=False),
        Binding("escape", "end_search", "End search", id="output.end_search", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: collections.deque[str] = collections.deque(maxlen=KEEP)
        self.below = 0  # lines under the view (0: following the newest)
        self.query = ""  # the search, once typed
        self.typing: str | None = None  # the search being typed, or None
        self.match: int | None = None  # index in ``lines`` of the match on screen
        self._written = 0
        self._strips: list[Strip] | None = None
        self._key: tuple | None = None
        self._shown = 0  # lines (not rows) the last build put on screen
        self._source = None  # the store's output we follow: another (a restarted run) starts afresh

    # ---------------------------------------------------------------------------------- data
    def refresh_from(self, store: RunStore) -> None:
        with store.lock:
            output = store.output
            new_run = output is not self._source
            if new_run:  # a restarted run: its lines from the start, read from the bottom
                self._source, self._written, self.below, self.match = output, 0, 0, None
                self.lines.clear()
            total = output.total
            if total == self._written and not new_run:
                return
            fresh = min(total - self._written, len(output.lines), KEEP)
            dropped = max(0, len(self.lines) + fresh - KEEP)  # the oldest lines make room
            self.lines.extend(list(output.lines)[-fresh:] if fresh else [])
        self._written = total
        if self.below:  # reading back: stay on the same lines
            self.below = min(self.below + fresh, len(self.lines) - 1)
        if self.match is not None:
            self.match = self.match - dropped if self.match >= dropped else None
        self._changed()

    def _changed(self) -> None:
        self._strips = None
        self._set_subtitle()
        self.refresh_bindings()  # n/N, Enter and Esc are the search's only while there is one
        self.refresh()

    # ------------------------------------------------------------------------------- actions
    def action_page(self, direction: int) -> None:
        step = max(1, self._shown - 1)
        self.below = max(0, min(len(self.lines) - 1, self.below - direction * step))
        self._changed()

    def action_oldest(self) -> None:
        self.below = max(0, len(self.lines) - max(1, self._shown))
        self._changed()

    def action_newest(self) -> None:
        self.below = 0
        self._changed()

    def action_search(self) -> None:
        self.typing = ""
        self._changed()

    def action_next_match(self, direction: int) -> None:
        """The next line (``direction`` 1: older, -1: newer) holding the search, brought into view."""
        needle = self.query.casefold()
        start = self.match if self.match is not None else len(self.lines) - self.below
        order = range(start - 1, -1, -1) if direction > 0 else range(start + 1, len(self.lines))
        found = next((i for i in order if needle in self.lines[i].casefold()), None)
        if found is None:
            self.notify(f"no {'older' if direction > 0 else 'newer'} line holds “{printable(self.query)}”", timeout=3)
            return
        self.match = found
        self.below = len(self.lines) - 1 - found
        self._changed()

    def action_end_search(self) -> None:
        self.query, self.match, self.typing = "", None, None
        self._changed()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """``n``, ``N``, Enter and Esc belong to the search only while there is one: otherwise
        they go on (``n`` writes a note)."""
        if action in ("next_match", "end_search"):
            return bool(self.query) or self.typing is not None
        return True

    def on_key(self, event: events.Key) -> None:
        """While a search is typed, keys are its text (Enter runs it, Esc drops it)."""
        if self.typing is None:
            return
        event.stop()
        event.prevent_default()
        if event.key == "enter":
            self.query, self.typing, self.match = self.typing, None, None
            if self.query:
                self.action_next_match(1)
        elif event.key == "escape":
            self.typing = None
        elif event.key == "backspace":
            self.typing = self.typing[:-1]
        elif event.is_printable and event.character:
            self.typing += printable(event.character)
        self._changed()

    # ------------------------------------------------------------------------------ drawing
    def _set_subtitle(self) -> None:
        parts = []
        if self.typing is not None:
            parts.append(f"search: {self.typing}▏  Enter · Esc")
        elif self.query:
            count = sum(1 for line in self.lines if self.query.casefold() in line.casefold())
            parts.append(f"“{self.query}”: {count} lines · n/N · Esc")
        if self.below:
            parts.append(f"↓ {self.below:,} newer · End")
        elif not parts:  # how to reach the keys, until they are reachable
            parts.append("PgUp back · / search" if self.has_focus else "Tab or click: scroll, search")
        text = fit_parts(parts, max(0, self.outer_size.width - 6), " · ")
        self.border_subtitle = escape(text)

    def on_focus(self) -> None:
        self._set_subtitle()

    def on_blur(self) -> None:
        if self.typing is not None:
            self.typing = None
        self._changed()

    def on_resize(self) -> None:
        self._strips = None
        self._set_subtitle()

    def _build(self, width: int, height: int, style: Style) -> list[Strip]:
        """The rows on screen, bottom-aligned: the lines above ``below`` wrapped, newest last."""
        rows: list[tuple[str, int]] = []  # (text, line index)
        index = len(self.lines) - 1 - self.below
        shown = 0
        while index >= 0 and len(rows) < height:
            text = printable(self.lines[index]).expandtabs(TAB)
            rows[:0] = [(row, index) for row in wrap(text, width)]
            index -= 1
            shown += 1
        self._shown = shown
        rows = rows[-height:]
        needle = self.query.casefold()
        mark = style + Style(reverse=True)
        strips = [Strip.blank(width, style)] * (height - len(rows))
        for text, line in rows:
            strips.append(self._row(text, width, style, mark if line == self.match else None, needle))
        return strips

    @staticmethod
    def _row(text: str, width: int, style: Style, current: Style | None, needle: str) -> Strip:
        """One row; the search's hits underlined, the whole row reversed on the current match."""
        base = current or style
        if not needle or needle not in text.casefold():
            return Strip([Segment(text.ljust(width), base)], width)
        hit = base + Style(underline=True, bold=True)
        segments, at, folded = [], 0, text.casefold()
        while (found := folded.find(needle, at)) >= 0:
            segments += [Segment(text[at:found], base), Segment(text[found:found + len(needle)], hit)]
            at = found + len(needle)
        segments.append(Segment(text[at:].ljust(width - at), base))
        return Strip(segments, width).adjust_cell_length(width, style)

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        style = self.rich_style
        key = (width, height, style)
        if self._strips is None or key != self._key:
            self._key = key
            self._strips = self._build(width, height, style) if width > 0 else []
        return self._strips[y] if 0 <= y < len(self._strips) else Strip.blank(width, style)
