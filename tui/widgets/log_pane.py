"""The child's stdout and stderr, as saved in output.log (a traceback shows here)."""

from __future__ import annotations

from textual.widgets import Log

from tui.store import RunStore


class LogPane(Log):
    """Not focusable: the arrow keys belong to the params and the chart, whatever has focus."""

    can_focus = False

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=5000, **kwargs)
        self._written = 0

    def refresh_from(self, store: RunStore) -> None:
        with store.lock:
            total = store.output_total
            if total == self._written:
                return
            fresh = min(total - self._written, len(store.output))
            lines = list(store.output)[-fresh:] if fresh else []
        self._written = total
        self.write_lines(lines, scroll_end=True)  # the newest output stays in view
