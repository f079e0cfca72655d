"""`?`: the keys that work on the screen below, read from its live bindings (after the user's
keymap, with what is unavailable now and why), so the help is always true."""

from __future__ import annotations

from textual.actions import parse
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


def help_rows(app, bindings: dict[str, ActiveBinding]) -> list[tuple[str, str, str]]:
    """(keys, description, why unavailable) per action, keys joined, in binding order. Only
    bindings with an id: ours, which a keymap can move (not Textual's focus and copy keys)."""
    rows: dict[tuple, list] = {}
    for key, active in bindings.items():
        binding, node = active.binding, active.node
        if binding.id is None or not binding.description or binding.system:
            continue
        row = rows.setdefault((id(node), binding.action), [[], binding.description, ""])
        row[0].append(app.get_key_display(binding.with_key(key, None)))
        if not active.enabled and not row[2]:
            _, name, arguments = parse(binding.action)
            why = getattr(node, "why_unavailable", None)
            row[2] = (why(name, arguments) if why is not None else None) or "not available now"
    return [(", ".join(dict.fromkeys(keys)), description, why) for keys, description, why in rows.values()]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help.close")]

    def __init__(self, bindings: dict[str, ActiveBinding]) -> None:
        super().__init__()
        self.shown_bindings = bindings

    def compose(self) -> ComposeResult:
        rows = help_rows(self.app, self.shown_bindings)
        width = max((len(keys) for keys, _, _ in rows), default=0)
        lines = [Content.from_markup("[b]neurotop keys[/b]"), Content("")]
        lines += [Content.assemble(("  " + keys.ljust(width), "$accent"), "  ", description)
                  for keys, description, why in rows if not why]
        for reason in dict.fromkeys(why for _, _, why in rows if why):  # the rest, under why not
            lines += [Content(""), Content.assemble(("Not now: ", "bold"), reason)]
            lines += [Content.assemble(("  " + keys.ljust(width), "dim"), "  ", (description, "dim"))
                      for keys, description, why in rows if why == reason]
        lines += [Content(""), Content.from_markup(
            "[dim]A change reaches the run at its next step and is acknowledged back;\n"
            "a refused value is shown with its reason.  Esc closes.[/dim]")]
        with VerticalScroll(id="help-body"):
            yield Static(Content("\n").join(lines))

    def action_close(self) -> None:
        self.dismiss()
