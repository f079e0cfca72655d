"""`q` while the run goes on: stop it, or leave it running and come back later with `neurotop
attach`. (Once the run has ended there is nothing to decide: `q` quits at once.)"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class QuitScreen(ModalScreen[str | None]):
    """Returns "stop", "detach" or None (cancel)."""

    BINDINGS = [
        Binding("s", "choose('stop')", "Stop the run", id="quit.stop"),
        Binding("d,l", "choose('detach')", "Leave it running", id="quit.detach"),
        Binding("escape,c", "choose(None)", "Cancel", id="quit.cancel"),
    ]

    def __init__(self, attach_hint: str) -> None:
        super().__init__()
        self.attach_hint = attach_hint

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Static("[b]Quit neurotop.[/b] The run is still training.\n\n"
                         "[$accent]s[/] stop the run cleanly   [$accent]d[/] leave it running"
                         f" (reopen with [b]{self.attach_hint}[/b])   [$accent]esc[/] cancel")
            with Horizontal(id="quit-buttons"):
                yield Button("Stop the run", id="stop", variant="error")
                yield Button("Leave it running", id="detach", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
