"""The neurotop app: composes the panes, binds the keys, paints on a clock.

Data flows one way: the link's reader threads decode into the ``RunStore`` and post a coalescing
``RunUpdated``; the system sampler thread posts ``SystemSampled``; panes repaint on a timer and
only when their part of the store changed. Keys become ``Command``s sent through the link.
"""

from __future__ import annotations

import json
import time
import tomllib
from typing import Callable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer
from textual.worker import get_current_worker

from neurotop.trainer import journal
from neurotop.trainer.params import Refused, parse_typed, step_value
from neurotop.trainer.protocol import ENV_PARAMS, ENV_RESUME, Command, Value
from neurotop.tui.link import Link, LinkClosed
from neurotop.tui.screens.choice import ChoiceScreen
from neurotop.tui.screens.diagnostics import DiagnosticsScreen
from neurotop.tui.screens.edit import PromptScreen
from neurotop.tui.screens.help import HelpScreen
from neurotop.tui.compare import Compare
from neurotop.tui.screens.pathways import PathwaysScreen
from neurotop.tui.screens.quit import QuitScreen
from neurotop.tui.store import RunStore
from neurotop.tui.system import SystemSampler
from neurotop.tui.themes import USER_THEMES, load_themes
from neurotop.tui.widgets.activations import ActivationsPane
from neurotop.tui.widgets.bars import compact
from neurotop.tui.widgets.header import RunHeader
from neurotop.tui.widgets.log_pane import LogPane
from neurotop.tui.widgets.loss_chart import LossChart
from neurotop.tui.widgets.params_pane import ParamsPane
from neurotop.tui.widgets.reconstructions import ReconstructionsPane
from neurotop.tui.widgets.system_pane import SystemPane

KEYMAP_FILE = USER_THEMES.parent / "keymap.toml"
NARROW_WIDTH = 110
TINY_WIDTH, TINY_HEIGHT = 70, 20  # below either: the loss and the params only
SEND_DEBOUNCE = 0.15

LinkFactory = Callable[[RunStore, Callable[[], None]], Link]


class RunUpdated(Message):
    """New data reached the store. Many in a row collapse into one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdated)


class SystemSampled(Message):
    def __init__(self, sample: object) -> None:
        super().__init__()
        self.sample = sample

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SystemSampled)


class NeurotopApp(App[str | None]):
    """Returns "stop", "detach" or None from ``run()``; the CLI prints the attach line."""

    CSS_PATH = "neurotop.tcss"
    ENABLE_COMMAND_PALETTE = False  # every action has a key; the palette's ^p only took footer room
    TITLE = "neurotop"
    BINDINGS = [
        Binding("up", "select_param(-1)", "Param up", id="params.up", show=False),
        Binding("down", "select_param(1)", "Param down", id="params.down", show=False),
        Binding("plus,equals_sign", "step_param(1)", "Step param", id="params.increase", key_display="+/-"),
        Binding("minus", "step_param(-1)", "Step -", id="params.decrease", show=False),
        Binding("e", "edit_param", "Edit", id="params.edit"),
        Binding("p", "toggle_pause", "Pause", id="run.pause"),
        Binding("c", "checkpoint", "Checkpoint", id="run.checkpoint"),
        Binding("n", "note", "Note", id="run.note"),
        Binding("l", "toggle_log", "Log-y", id="chart.log", show=False),
        Binding("s", "smoothing", "Smooth", id="chart.smooth", show=False),
        Binding("z", "zoom(0.5)", "Zoom in", id="chart.zoom_in", show=False),
        Binding("Z,x", "zoom(2.0)", "Zoom out", id="chart.zoom_out", show=False),
        Binding("left", "pan(-1)", "Pan left", id="chart.pan_left", show=False),
        Binding("right", "pan(1)", "Pan right", id="chart.pan_right", show=False),
        Binding("f,end", "follow", "Follow newest", id="chart.follow", show=False),
        Binding("left_square_bracket", "layer(-1)", "Previous layer", id="activations.previous", show=False),
        Binding("right_square_bracket", "layer(1)", "Next layer", id="activations.next", show=False),
        Binding("t", "next_theme", "Theme", id="app.theme", show=False),
        Binding("d", "diagnostics", "Diagnostics", id="app.diagnostics", show=False),
        Binding("v", "pathways", "Pathways: health, gradients, latent, notes", id="app.pathways", show=False),
        Binding("r", "restart", "Restart", id="run.restart", show=False),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("q", "quit_run", "Quit", id="app.quit"),
    ]

    def __init__(self, link_factory: LinkFactory, *, name: str = "", refresh_hz: float = 4.0,
                 pictures_hz: float = 0.5, sample_system: bool = True, read_only: bool = False,
                 show_ui_cost: bool = True, compare=None) -> None:
        super().__init__()
        self.compare_dir = compare  # --compare RUN: another run's journal, overlaid (neurotop.tui.compare)
        self.compare = Compare(lambda: self.post_message(RunUpdated()))
        self.store = RunStore(name=name, read_only=read_only)
        self.link_factory = link_factory
        self.link: Link | None = None
        self.refresh_hz, self.pictures_hz = refresh_hz, pictures_hz
        self.sample_system, self.show_ui_cost = sample_system, show_ui_cost
        self.pending: dict[str, Value] = {}  # debounced parameter changes, the latest wins
        self._diverged_seen = 0
        self.sent: dict[str, tuple[Value, float]] = {}  # sent, not yet acknowledged: (value, when)
        self._send_timer = None
        themes, self.theme_problems = load_themes()
        for theme in themes:
            self.register_theme(theme)
        self.theme_names = [t.name for t in themes]
        if self.theme_names:
            self.theme = self.theme_names[0]
        self._load_keymap()

    # ------------------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield RunHeader(show_ui_cost=self.show_ui_cost, id="header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield LossChart(id="loss")
                yield ActivationsPane(id="activations")
                yield ReconstructionsPane(id="reconstructions")
            with Vertical(id="right"):
                yield SystemPane(id="system")
                yield ParamsPane(id="params")
                yield LogPane(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        titles = {"loss": "Loss", "system": "System", "params": "Params", "log": "Output",
                  "activations": "Activations", "reconstructions": "Reconstructions"}
        for pane_id, title in titles.items():
            self.query_one(f"#{pane_id}").border_title = title
        self.link = self.link_factory(self.store, lambda: self.post_message(RunUpdated()))
        self.set_interval(1 / self.refresh_hz, self.repaint)
        self.set_interval(1 / self.pictures_hz, self.repaint_pictures)
        if self.sample_system:
            self.sample_system_forever()
        for problem in self.theme_problems:
            self.notify(problem, severity="warning")
        self._apply_width(self.size.width)
        if self.compare_dir is not None:
            self.compare.open(self.compare_dir)

    def on_resize(self, event) -> None:
        self._apply_width(event.size.width)

    def _apply_width(self, width: int) -> None:
        self.screen.set_class(width < NARROW_WIDTH, "narrow")
        self.screen.set_class(width < TINY_WIDTH or self.size.height < TINY_HEIGHT, "tiny")

    # ---------------------------------------------------------------------------- painting
    def repaint(self) -> None:
        """The fast clock, for the text panes: each redraws only if its part of the store changed."""
        if not self.is_running:  # shutting down: the screens' widgets are going
            return
        store = self.store
        for pane in (self.query_one(RunHeader), self.query_one(SystemPane), self.query_one(ParamsPane)):
            pane.refresh_from(store)
        self._show_notices()

    def repaint_pictures(self) -> None:
        """The slow clock, for the chart, the heatmaps and the log: each repaint rewrites the whole
        pane (a scrolling log included), which is what costs bytes over SSH (see `make bench`)."""
        if not self.is_running:
            return
        for pane in (self.query_one(LossChart), self.query_one(ActivationsPane),
                     self.query_one(ReconstructionsPane), self.query_one(LogPane)):
            pane.refresh_from(self.store)

    def _show_notices(self) -> None:
        for notice in self.store.take_notices():
            self.notify(notice.text, severity=notice.severity, timeout=6)
        run = self.store.run
        if run.divergences != self._diverged_seen:
            self._diverged_seen = run.divergences
            if run.diverged is not None and run.state != "finished":
                self._offer_guard_choices(run.diverged.text)

    def _offer_guard_choices(self, text: str) -> None:
        """The guard paused the run: roll back, halve the learning rate, or go on."""
        choices = {"r": ("rollback", "Roll back to the last good checkpoint"),
                   "h": ("halve", "Halve the learning rate"), "c": ("continue", "Continue")}

        def chosen(answer: str | None) -> None:
            if answer == "rollback":
                self.send(Command(action="rollback", source="ui"))
            elif answer == "halve" and "lr" in self.store.params.specs:
                lr = self.pending.get("lr", self.store.params.specs["lr"].value)
                self.send(Command(action="set", name="lr", value=lr / 2, source="ui"))
            if answer is not None:
                self.send(Command(action="resume", source="ui"))

        self.push_screen(ChoiceScreen("Training diverged", text, choices), chosen)

    def on_run_updated(self, _: RunUpdated) -> None:
        self._show_notices()

    def on_system_sampled(self, message: SystemSampled) -> None:
        self.store.ingest([message.sample])

    @work(thread=True, exclusive=True, group="system")
    def sample_system_forever(self) -> None:
        """A thread that samples psutil/NVML once a second and only posts what it saw."""
        worker = get_current_worker()
        with SystemSampler() as sampler:
            while not worker.is_cancelled:
                if self.link is not None and self.link.pid:
                    sampler.watch(self.link.pid)
                self.post_message(SystemSampled(sampler.sample()))
                time.sleep(1.0)

    # ------------------------------------------------------------------------------ actions
    def send(self, cmd: Command) -> bool:
        try:
            self.link.send(cmd)
        except LinkClosed as err:
            self.notify(str(err), severity="error")
            return False
        return True

    def action_select_param(self, delta: int) -> None:
        pane = self.query_one(ParamsPane)
        pane.refresh_from(self.store)  # the names may have arrived since the last clock tick
        pane.move(delta)
        pane.refresh_from(self.store)

    def _selected_spec(self):
        pane = self.query_one(ParamsPane)
        pane.refresh_from(self.store)
        name = pane.current
        spec = self.store.params.specs.get(name) if name else None
        if spec is None:
            self.notify("no parameter to change: this run declared none", severity="warning")
        return spec

    def action_step_param(self, direction: int) -> None:
        spec = self._selected_spec()
        if spec is None:
            return
        base = self.pending.get(spec.name, self._in_flight(spec.name, spec.value))
        self.request_value(spec.name, step_value(spec, base, direction))

    def _in_flight(self, name: str, acknowledged: Value) -> Value:
        """What was last sent for ``name`` until the child answers it: presses made before the
        acknowledgement build on what was asked, not on the older value."""
        sent = self.sent.get(name)
        if sent is None:
            return acknowledged
        value, at = sent
        change = self.store.params.last_change.get(name)
        if change is not None and change.t >= at:
            del self.sent[name]
            return acknowledged
        return value

    def request_value(self, name: str, value: Value) -> None:
        """Queue a change; a burst of key presses sends only its latest value, after a short pause."""
        self.pending[name] = value
        self.notify(f"{name} → {compact(value)} (sending)", timeout=2)
        if self._send_timer is None:
            self._send_timer = self.set_timer(SEND_DEBOUNCE, self._send_pending)

    def _send_pending(self) -> None:
        self._send_timer = None
        pending, self.pending = self.pending, {}
        for name, value in pending.items():
            if self.send(Command(action="set", name=name, value=value, source="ui")):
                self.sent[name] = (value, time.time())

    def action_edit_param(self) -> None:
        spec = self._selected_spec()
        if spec is None:
            return
        bounds = " | ".join(spec.choices) if spec.choices else f"{spec.min} … {spec.max}"

        def typed(text: str | None) -> None:
            if text is None:
                return
            try:
                self.request_value(spec.name, parse_typed(spec, text))
            except Refused as err:
                self.notify(f"{spec.name}: {err}", severity="error")

        self.push_screen(PromptScreen(f"Set {spec.name}", f"{spec.kind}, {bounds}. Enter sends, Esc cancels.",
                                      value=str(spec.value)), typed)

    def action_toggle_pause(self) -> None:
        action = "resume" if self.store.run.state == "paused" else "pause"
        if self.send(Command(action=action, source="ui")):
            self.notify("resuming…" if action == "resume" else "pausing at the next step…", timeout=2)

    def action_checkpoint(self) -> None:
        if self.send(Command(action="checkpoint", source="ui")):
            self.notify("checkpoint asked for", timeout=2)

    def action_note(self) -> None:
        def typed(text: str | None) -> None:
            if text and text.strip():
                self.send(Command(action="note", text=text.strip(), source="ui"))

        self.push_screen(PromptScreen(f"Note at step {self.store.run.step:,}", "Journaled with the step and time."), typed)

    def action_toggle_log(self) -> None:
        chart = self.query_one(LossChart)
        chart.toggle_log()
        chart.refresh_from(self.store)

    def action_smoothing(self) -> None:
        chart = self.query_one(LossChart)
        self.notify(f"smoothing {chart.cycle_smoothing():g}", timeout=2)
        chart.refresh_from(self.store)

    def action_zoom(self, factor: float) -> None:
        chart = self.query_one(LossChart)
        chart.zoom(self.store, factor)
        chart.refresh_from(self.store)

    def action_pan(self, direction: int) -> None:
        chart = self.query_one(LossChart)
        chart.pan(self.store, direction)
        chart.refresh_from(self.store)

    def action_follow(self) -> None:
        chart = self.query_one(LossChart)
        chart.follow()
        chart.refresh_from(self.store)

    def action_layer(self, direction: int) -> None:
        pane = self.query_one(ActivationsPane)
        pane.next_layer() if direction > 0 else pane.previous_layer()

    def action_next_theme(self) -> None:
        names = self.theme_names or [self.theme]
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]

    def action_pathways(self) -> None:
        self.push_screen(PathwaysScreen())

    def action_diagnostics(self) -> None:
        self.push_screen(DiagnosticsScreen(self.store, str(self.link.run_dir) if self.link else "", self.link.pid if self.link else None))

    def action_restart(self) -> None:
        """Start the run again as a new run: from its last checkpoint when there is one, with the
        current parameter values. Asks first."""
        if not self.store.run.finished:
            self.notify("the run is still going: stop it first (q, then s)", severity="warning")
            return
        if self.link is None or not self.link.argv:
            self.notify("this run cannot be restarted from here (its command is unknown)", severity="error")
            return
        checkpoint = journal.latest_checkpoint(self.link.run_dir)
        params = {name: spec.value for name, spec in self.store.params.specs.items()}
        where = f"from {checkpoint.name}" if checkpoint else "from scratch (no checkpoint)"

        def chosen(answer: str | None) -> None:
            if answer == "restart":
                self._restart(checkpoint, params)

        self.push_screen(ChoiceScreen("Restart the run?", f"A new run {where}, with the current parameter values.",
                                      {"y": ("restart", "Restart"), "n": ("cancel", "Cancel")}), chosen)

    def _restart(self, checkpoint, params: dict) -> None:
        old = self.link
        old.detach()
        env = {ENV_PARAMS: json.dumps(params)} if params else {}
        if checkpoint is not None:
            env[ENV_RESUME] = str(checkpoint)
        run_dir = journal.create_run_dir(old.run_dir.parent, self.store.run.name or old.run_dir.name)
        self.store = RunStore(name=self.store.run.name)  # a new run: its own step, clock and speed
        self.link = old.respawn(run_dir, self.store, env)
        self.notify(f"restarted as {run_dir.name}")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS))

    def action_quit_run(self) -> None:
        running = not self.store.run.finished and self.link is not None and not self.store.run.read_only
        run_id = self.link.run_dir.name if self.link else ""
        self.push_screen(QuitScreen(running, f"neurotop attach {run_id}"), self._quit_chosen)

    def _quit_chosen(self, choice: str | None) -> None:
        if choice is None:
            return
        if choice == "stop":
            self.notify("stopping the run cleanly…", timeout=10)
            self._stop_then_exit()
        else:
            self.link.detach()
            self.exit("detach")

    @work(thread=True, exclusive=True, group="stop")
    def _stop_then_exit(self) -> None:
        self.link.stop()
        self.call_from_thread(self.exit, "stop")

    # ------------------------------------------------------------------------------ keymap
    def _load_keymap(self) -> None:
        """``~/.config/neurotop/keymap.toml``: ``"run.pause" = "space"`` rebinds by binding id."""
        if not KEYMAP_FILE.is_file():
            return
        try:
            keymap = tomllib.loads(KEYMAP_FILE.read_text())
            self.set_keymap({str(k): str(v) for k, v in keymap.items()})
        except (tomllib.TOMLDecodeError, OSError) as err:
            self.theme_problems.append(f"keymap {KEYMAP_FILE}: {err}")
