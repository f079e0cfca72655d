"""Params: what the run declared, the values the child acknowledged, and the last change."""

from __future__ import annotations

import time
from typing import Callable

from textual.binding import Binding
from textual.markup import escape
from textual.message import Message
from textual.reactive import var
from textual.widgets import Static

from neurotop.trainer.protocol import Command, ParamChange, ParamSpec, Value
from neurotop.tui.format import fit, flow, one_line, short, wrap
from neurotop.tui.param_input import step_value
from neurotop.tui.store import RunStore

SEND_DEBOUNCE = 0.15

NO_SDK = ("[dim]This run declared no parameters.\n"
          "Add the SDK (five lines, see the README) to tune it live: "
          "Monitor(model, params={...}).[/dim]")


WAITING = "[dim]waiting for the run…[/dim]"


class ParamRequests:
    """What the keys asked for each parameter: a burst of presses sends only its latest value
    (``pending``, flushed after a short pause), and presses made before the child acknowledges a
    send build on what was asked, not on the older value (``sent``)."""

    def __init__(self) -> None:
        self.pending: dict[str, Value] = {}
        self.sent: dict[str, tuple[Value, float]] = {}  # sent, not yet acknowledged: (value, when)

    def latest(self, name: str, acknowledged: Value, change: ParamChange | None) -> Value:
        """The value the next press builds on: pending, else in flight, else ``acknowledged``."""
        if name in self.pending:
            return self.pending[name]
        sent = self.sent.get(name)
        if sent is None:
            return acknowledged
        value, at = sent
        if change is not None and change.t >= at:  # the child answered it (applied or refused)
            del self.sent[name]
            return acknowledged
        return value

    def take(self) -> dict[str, Value]:
        """The pending values, now marked as sent."""
        pending, self.pending = self.pending, {}
        now = time.time()
        self.sent.update({name: (value, now) for name, value in pending.items()})
        return pending

    def forget(self, name: str) -> None:
        """A send that never reached the run: the next press builds on the acknowledged value."""
        self.sent.pop(name, None)


class ParamsPane(Static):
    """A list with a cursor: ↑/↓ select, +/- step, e edits the selected parameter. Changes are
    debounced here and handed to ``send`` (the app's: it queues them for its send worker and
    calls ``on_failure`` on the UI thread if one cannot be delivered)."""

    BINDINGS = [
        Binding("up", "select(-1)", "Param up", id="params.up", show=False),
        Binding("down", "select(1)", "Param down", id="params.down", show=False),
        Binding("plus,equals_sign", "step(1)", "Step param", id="params.increase", key_display="+/-"),
        Binding("minus", "step(-1)", "Step -", id="params.decrease", show=False),
        Binding("e", "edit", "Edit", id="params.edit"),
    ]

    selected = var(0)

    class EditRequested(Message):
        """`e`: the screen asks for a typed value (a dialog is a screen's job) and calls ``request``."""

        def __init__(self, pane: "ParamsPane", spec: ParamSpec) -> None:
            super().__init__()
            self.pane, self.spec = pane, spec

        @property
        def control(self) -> "ParamsPane":
            return self.pane

    def __init__(self, send: Callable[[Command, Callable[[], None] | None], None], **kwargs) -> None:
        super().__init__("", **kwargs)
        self.send = send
        self.names: list[str] = []
        self.requests = ParamRequests()
        self._send_timer = None
        self._store: RunStore | None = None
        self._seen: tuple | None = None

    @property
    def current(self) -> str | None:
        return self.names[self.selected] if self.names else None

    @property
    def idle(self) -> bool:
        """Nothing waiting for the debounce to end."""
        return not self.requests.pending and self._send_timer is None

    def watch_selected(self) -> None:
        self._seen = None
        if self._store is not None:
            self.refresh_from(self._store)

    # ------------------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Step and edit are dimmed while there is nothing to change or no run to take it."""
        if action in ("step", "edit"):
            return None if self.why_unavailable(action) else True
        return True

    def why_unavailable(self, action: str, parameters: tuple[object, ...] = ()) -> str | None:
        store = self._store
        if action not in ("step", "edit") or store is None:
            return None
        run = store.run
        if run.finished:
            return f"the run has {run.state}: commands no longer reach it"
        if run.read_only:
            return "attached read-only"
        if not store.params.specs:
            return "no parameter to change: this run declared none"
        return None

    def action_select(self, delta: int) -> None:
        if self._store is not None:
            self.refresh_from(self._store)  # the names may have arrived since the last clock tick
        if self.names:
            self.selected = (self.selected + delta) % len(self.names)

    def action_step(self, direction: int) -> None:
        spec = self._selected_spec()
        if spec is not None:
            self.request(spec.name, step_value(spec, self.latest(spec), direction))

    def action_edit(self) -> None:
        spec = self._selected_spec()
        if spec is not None:
            self.post_message(self.EditRequested(self, spec))

    def latest(self, spec: ParamSpec) -> Value:
        """What the parameter is, or will be once the child answers what was asked."""
        change = self._store.params.last_change.get(spec.name) if self._store is not None else None
        return self.requests.latest(spec.name, spec.value, change)

    def request(self, name: str, value: Value) -> None:
        """Queue a change; a burst of key presses sends only its latest value, after a short pause."""
        self.requests.pending[name] = value
        self.notify(f"{name} → {short(value)} (sending)", timeout=2)
        if self._send_timer is None:
            self._send_timer = self.set_timer(SEND_DEBOUNCE, self._send_pending)

    def _send_pending(self) -> None:
        self._send_timer = None
        for name, value in self.requests.take().items():
            self.send(Command(action="set", name=name, value=value, source="ui"),
                      lambda name=name: self.requests.forget(name))

    def _selected_spec(self) -> ParamSpec | None:
        if self._store is None:
            return None
        self.refresh_from(self._store)
        name = self.current
        return self._store.params.specs.get(name) if name else None

    def refresh_from(self, store: RunStore) -> None:
        run, params = store.run, store.params
        no_sdk = run.hello is None and (run.finished or run.elapsed() > 3)
        self._store = store
        key = (params.version, self.selected, run.hello is not None, no_sdk, self.size.width)
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
            self.set_reactive(ParamsPane.selected, min(self.selected, len(self.names) - 1))
            room = self.content_size.width or 80
            shown = max(len(short(spec.value)) for spec in params.specs.values())
            # names as long as the longest, unless a value would wrap: then names are cut, with an ellipsis
            width = max(4, min(max(len(one_line(n)) for n in self.names), room - 4 - max(9, shown)))
            lines = []
            for i, (name, spec) in enumerate(params.specs.items()):
                cursor = "[$accent]›[/]" if i == self.selected else " "
                change = params.last_change.get(name)
                value = short(spec.value).rjust(9)
                line = f"{cursor} {escape(fit(one_line(name), width))}  [b]{escape(value)}[/b]"
                when = f"@ {change.step:,}" if change is not None and change.ok else ""
                if when and 2 + width + 2 + len(value) + 2 + len(when) <= room:  # the step of the change, where it fits
                    line += f"  [dim]{when}[/dim]"
                lines.append(line)
                if change is not None and not change.ok:  # its own lines: a reason is a sentence
                    refused = f"refused {short(change.new)}: {one_line(change.reason)}"
                    lines += [f"    [$error]{escape(row)}[/]" for row in wrap(refused, room - 4)]
            spec = params.specs[self.names[self.selected]]
            bounds = " | ".join(one_line(c) for c in spec.choices) if spec.choices else (
                f"{short(spec.min) if spec.min is not None else '-∞'} … "
                f"{short(spec.max) if spec.max is not None else '∞'}{' log' if spec.log else ''}")
            about = [one_line(spec.help), f"[{bounds}]"] if spec.help else [f"[{bounds}]"]
            lines += [f"[dim]{escape('  '.join(line))}[/dim]" for line in flow(about, room)]
        self.update("\n".join(lines))
