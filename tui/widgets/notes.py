"""Notes and parameter changes on one timeline (step, time, text): what a person wrote with ``n``
and what was changed, refused, saved or restored, newest at the bottom. The same journal lines
rebuild it under ``neurotop attach``.
"""

from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from neurotop.trainer.protocol import Event, ParamChange
from neurotop.tui.format import one_line, short
from neurotop.tui.store import RunStore

#: Event kinds shown beside notes, each with its mark.
MARKS = {"note": "✎", "param": "⚙", "refused": "✗", "checkpoint": "◆", "restore": "↺", "warning": "⚠",
         "diverged": "⚠", "pause": "‖", "resume": "▸", "stop": "■"}
MAX_LINES = 200


def timeline_entries(store: RunStore) -> list[tuple[int, float, str, str]]:
    """(step, time, kind, text) of notes, parameter changes and the other events worth reading,
    oldest first (at most ``MAX_LINES``). Call with the store's lock held."""
    out = []
    for msg in store.events.entries:
        if isinstance(msg, ParamChange):
            if msg.ok:
                old = f"{short(msg.old)} → " if msg.old is not None else ""
                out.append((msg.step, msg.t, "param", f"{msg.name} {old}{short(msg.new)}" + _source(msg.source)))
            else:
                out.append((msg.step, msg.t, "refused", f"{msg.name} = {short(msg.new)} refused: {msg.reason}"))
        elif isinstance(msg, Event):
            kind = msg.kind
            if kind == "checkpoint" and msg.source == "auto":
                continue  # rolling checkpoints would bury the notes
            if kind in MARKS:
                out.append((msg.step, msg.t, kind, msg.text or kind))
    return out[-MAX_LINES:]


class NotesPane(Static):
    """The timeline, newest last, as many lines as fit."""

    DEFAULT_CSS = """
    NotesPane { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.border_title = "Notes"
        self._seen: tuple | None = None
        self.entries: list[tuple[int, float, str, str]] = []

    def refresh_from(self, store: RunStore, compare: RunStore | None = None) -> None:
        key = (store.events.version, self.size)
        if key == self._seen:
            return
        self._seen = key
        with store.lock:
            self.entries = timeline_entries(store)
        notes = sum(1 for e in self.entries if e[2] == "note")
        self.border_title = f"Notes ({notes})" if notes else "Notes"
        self.border_subtitle = "n: add a note"
        if not self.entries:
            self.update(Text("no notes yet: n writes one, journaled with the step", Style(dim=True)))
            return
        height = max(1, self.size.height or 8)
        text = Text(no_wrap=True, overflow="ellipsis")
        dim = Style(dim=True)
        for i, (step, t, kind, body) in enumerate(self.entries[-height:]):
            if i:
                text.append("\n")
            text.append(f"{step:>8,} {time.strftime('%H:%M:%S', time.localtime(t))} ", dim)
            text.append(f"{MARKS.get(kind, '·')} ", Style(bold=True))
            text.append(one_line(body), Style(bold=kind == "note"))
        self.update(text)


def _source(source: str) -> str:
    return f" ({source})" if source and source not in ("ui",) else ""
