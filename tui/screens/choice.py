"""A question with a few answers, each on a key: the guard's offer, a restart's confirmation."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ChoiceScreen(ModalScreen[str | None]):
    """``choices`` maps a one-letter key to (answer id, label). Esc answers None."""

    BINDINGS = [Binding("escape", "answer(None)", "Cancel", id="choice.cancel")]

    def __init__(self, title: str, text: str, choices: dict[str, tuple[str, str]]) -> None:
        super().__init__()
        self.title_text, self.text, self.choices = title, text, choices

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-dialog"):
            yield Static(f"[b]{escape(self.title_text)}[/b]\n\n{escape(self.text)}")
            with Vertical(id="choice-buttons"):
                for key, (answer, label) in self.choices.items():
                    yield Button(f"{key}  {label}", id=f"choice-{answer}")

    def on_key(self, event) -> None:
        if event.character in self.choices:
            event.stop()
            self.dismiss(self.choices[event.character][0])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id.removeprefix("choice-"))

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)
