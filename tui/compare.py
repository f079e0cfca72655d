"""Another run overlaid on this one (``--compare RUN``, or ``o`` on the pathways screen).

The App owns one ``Compare``; panes observe it: they read ``compare.store`` (None when not
comparing) when they repaint, and a pane's redraw key includes the store's versions, which never
repeat across stores, so opening, switching or closing a comparison redraws what it touches.
The compared run gets its own read-only ``RunStore``, fed by a ``Link`` that follows its journal
as ``neurotop attach`` does; nothing of it is written by a pane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from neurotop.trainer import journal
from neurotop.tui.link import Link
from neurotop.tui.store import RunStore


class Compare:
    """The run compared with, if any: ``open`` one, ``close`` it; ``store`` is what panes draw."""

    def __init__(self, notify: Callable[[], None] = lambda: None) -> None:
        self.notify = notify
        self.store: RunStore | None = None
        self.run_dir: Path | None = None
        self._link: Link | None = None

    def open(self, run_dir: Path) -> RunStore:
        """Compare with the run in ``run_dir`` (instead of any other)."""
        self.close()
        run_dir = Path(run_dir)
        try:
            name = journal.RunInfo.load(run_dir).name
        except (OSError, ValueError, TypeError):
            name = run_dir.name
        store = RunStore(name=name, read_only=True)
        self._link = Link.attach(run_dir, store, self.notify)
        self.store, self.run_dir = store, run_dir
        return store

    def close(self) -> None:
        """Stop comparing: the follower thread ends, the panes drop the overlay on their next repaint."""
        if self._link is not None:
            self._link.detach()
        self.store = self.run_dir = self._link = None
