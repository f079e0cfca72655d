"""`?`: every key the app binds, drawn from the bindings themselves so it never goes stale."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self._bindings = bindings

    def compose(self) -> ComposeResult:
        rows = ["[b]neurotop keys[/b]", ""]
        for b in self._bindings:
            keys = ", ".join(_pretty(k) for k in b.key.split(","))
            rows.append(f"  [$accent]{keys:<14}[/] {b.description}")
        rows += ["", "[dim]A change reaches the run at its next step and is acknowledged back;",
                 "a refused value is shown with its reason.  Esc closes.[/dim]"]
        with VerticalScroll(id="help-body"):
            yield Static("\n".join(rows))


def _pretty(key: str) -> str:
    return {"question_mark": "?", "plus": "+", "minus": "-", "equals_sign": "=", "left_square_bracket": "[",
            "right_square_bracket": "]", "slash": "/"}.get(key, key)
