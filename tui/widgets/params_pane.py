"""Params: what the run declared, the values the child acknowledged, and the last change."""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from neurotop.tui.format import fit, flow, one_line, short, wrap
from neurotop.tui.store import RunStore

NO_SDK = ("[dim]This run declared no parameters.\n"
          "Add the SDK (five lines, see the README) to tune it live: "
          "Monitor(model, params={...}).[/dim]")


WAITING = "[dim]waiting for the run…[/dim]"


class ParamsPane(Static):
    """A list with a cursor (↑/↓ move it); the app steps or edits the selected parameter."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.selected = 0
        self.names: list[str] = []
        self._seen: tuple | None = None

    def move(self, delta: int) -> None:
        if self.names:
            self.selected = (self.selected + delta) % len(self.names)
            self._seen = None

    @property
    def current(self) -> str | None:
        return self.names[self.selected] if self.names else None

    def refresh_from(self, store: RunStore) -> None:
        no_sdk = store.hello is None and (store.finished or store.elapsed() > 3)
        key = (store.versions["params"], self.selected, store.hello is not None, no_sdk, self.size.width)
        if key == self._seen:
            return
        self._seen = key
        with store.lock:
            self.names = list(store.params)
            if not self.names:
                self.update(NO_SDK if store.hello is not None or store.finished else WAITING if not no_sdk
                            else "[dim]This run has declared no parameters yet: the SDK declares them when it "
                                 "starts; a plain command has none (add the five SDK lines to tune it live).[/dim]")
                return
            self.selected = min(self.selected, len(self.names) - 1)
            room = self.content_size.width or 80
            shown = max(len(short(spec.value)) for spec in store.params.values())
            # names as long as the longest, unless a value would wrap: then names are cut, with an ellipsis
            width = max(4, min(max(len(one_line(n)) for n in self.names), room - 4 - max(9, shown)))
            lines = []
            for i, (name, spec) in enumerate(store.params.items()):
                cursor = "[$accent]›[/]" if i == self.selected else " "
                change = store.last_change.get(name)
                value = short(spec.value).rjust(9)
                line = f"{cursor} {escape(fit(one_line(name), width))}  [b]{escape(value)}[/b]"
                when = f"@ {change.step:,}" if change is not None and change.ok else ""
                if when and 2 + width + 2 + len(value) + 2 + len(when) <= room:  # the step of the change, where it fits
                    line += f"  [dim]{when}[/dim]"
                lines.append(line)
                if change is not None and not change.ok:  # its own lines: a reason is a sentence
                    refused = f"refused {short(change.new)}: {one_line(change.reason)}"
                    lines += [f"    [$error]{escape(row)}[/]" for row in wrap(refused, room - 4)]
            spec = store.params[self.names[self.selected]]
            bounds = " | ".join(one_line(c) for c in spec.choices) if spec.choices else (
                f"{short(spec.min) if spec.min is not None else '-∞'} … "
                f"{short(spec.max) if spec.max is not None else '∞'}{' log' if spec.log else ''}")
            about = [one_line(spec.help), f"[{bounds}]"] if spec.help else [f"[{bounds}]"]
            lines += [f"[dim]{escape('  '.join(line))}[/dim]" for line in flow(about, room)]
        self.update("\n".join(lines))
