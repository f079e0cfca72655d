"""Params: what the run declared, the values the child acknowledged, and the last change."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from neurotop.tui.store import RunStore
from neurotop.tui.widgets.bars import compact

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
        run, params = store.run, store.params
        no_sdk = run.hello is None and (run.finished or run.elapsed() > 3)
        key = (params.version, self.selected, run.hello is not None, no_sdk)
        if key == self._seen:
            return
        self._seen = key
        with store.lock:
            self.names = list(params.specs)
            if not self.names:
                self.update(NO_SDK if run.hello is not None or run.finished else WAITING if not no_sdk
                            else "[dim]This run has declared no parameters yet: the SDK declares them when it "
                                 "starts; a plain command has none (add the five SDK lines to tune it live).[/dim]")
                return
            self.selected = min(self.selected, len(self.names) - 1)
            width = max(len(n) for n in self.names)
            lines = []
            for i, (name, spec) in enumerate(params.specs.items()):
                cursor = "[$accent]›[/]" if i == self.selected else " "
                value = compact(spec.value)
                change = params.last_change.get(name)
                note = ""
                if change is not None:
                    if change.ok:
                        note = f"[dim]@ {change.step:,}[/dim]"
                    else:
                        note = f"[$error]refused {escape(compact(change.new))}: {escape(change.reason)}[/]"
                line = f"{cursor} {escape(name):<{width}}  [b]{escape(value):>9}[/b]  {note}"
                lines.append(line)
            spec = params.specs[self.names[self.selected]]
            bounds = spec.choices and " | ".join(spec.choices) or (
                f"{compact(spec.min) if spec.min is not None else '-∞'} … "
                f"{compact(spec.max) if spec.max is not None else '∞'}{'  log' if spec.log else ''}")
            lines.append(f"[dim]{escape(spec.help)}  [{escape(bounds)}][/dim]" if spec.help else f"[dim][{escape(bounds)}][/dim]")
        self.update("\n".join(lines))
