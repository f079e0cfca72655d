"""The neurotop app: the link, the store, the screens, themes and keymap, and the run-level keys.

Data flows one way: the link's reader threads decode into the ``RunStore`` and post a coalescing
``RunUpdated``; the system sampler thread posts ``SystemSampled``. The ``DashboardScreen`` (the
default screen) and the pathways screen repaint their panes on their own clocks, and each pane
owns the keys that act on it. Commands go to the run through one worker thread, so a slow or
dead socket never holds up a key press.
"""

from __future__ import annotations

import json
import queue
import time
import tomllib
from typing import Callable

from textual import work
from textual.actions import parse
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.worker import get_current_worker

from neurotop.trainer import journal
from neurotop.trainer.protocol import ENV_PARAMS, ENV_RESUME, Command
from neurotop.tui.link import Link, LinkClosed, attach_command
from neurotop.tui.screens.choice import ChoiceScreen
from neurotop.tui.screens.dashboard import DashboardScreen
from neurotop.tui.screens.diagnostics import DiagnosticsScreen
from neurotop.tui.screens.edit import PromptScreen
from neurotop.tui.screens.help import HelpScreen
from neurotop.tui.compare import Compare
from neurotop.tui.screens.pathways import PathwaysScreen
from neurotop.tui.screens.quit import QuitScreen
from neurotop.tui.store import RunStore
from neurotop.tui.system import SystemSampler
from neurotop.tui.themes import USER_THEMES, load_themes

KEYMAP_FILE = USER_THEMES.parent / "keymap.toml"
#: Run-level actions that need someone in the run listening: its SDK, or the supervisor of a plain
#: command (which says in its hello which of these it can carry out).
RUN_ACTIONS = ("pause", "resume", "checkpoint", "note")

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


class CommandFailed(Message):
    """The send worker could not deliver a command: shown, and the sender told."""

    def __init__(self, reason: str, on_failure: Callable[[], None] | None) -> None:
        super().__init__()
        self.reason, self.on_failure = reason, on_failure


class NeurotopApp(App[str | None]):
    """Returns "stop", "detach" or None from ``run()``; the CLI prints the attach line."""

    CSS_PATH = "neurotop.tcss"
    ENABLE_COMMAND_PALETTE = False  # every action has a key; the palette's ^p only took footer room
    TITLE = "neurotop"
    BINDINGS = [
        # one id, two bindings: the footer says Pause or Resume, whichever applies; a keymap moves both
        Binding("p", "pause", "Pause", id="run.pause"),
        Binding("p", "resume", "Resume", id="run.pause"),
        Binding("c", "checkpoint", "Checkpoint", id="run.checkpoint"),
        Binding("n", "note", "Note", id="run.note"),
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
        self.outbox: queue.Queue[tuple[Command, Callable[[], None] | None]] = queue.Queue()
        self._diverged_seen = 0
        self._controls_seen: tuple | None = None
        themes, self.theme_problems = load_themes()
        for theme in themes:
            self.register_theme(theme)
        self.theme_names = [t.name for t in themes]
        if self.theme_names:
            self.theme = self.theme_names[0]
        self._load_keymap()

    # ------------------------------------------------------------------------------ layout
    def get_default_screen(self) -> DashboardScreen:
        self.dashboard = DashboardScreen(refresh_hz=self.refresh_hz, pictures_hz=self.pictures_hz,
                                         show_ui_cost=self.show_ui_cost)
        return self.dashboard

    def on_mount(self) -> None:
        self.link = self.link_factory(self.store, lambda: self.post_message(RunUpdated()))
        self.deliver_commands_forever()
        if self.sample_system:
            self.sample_system_forever()
        for problem in self.theme_problems:
            self.notify(problem, severity="warning")
        if self.compare_dir is not None:
            self.compare.open(self.compare_dir)

    # ------------------------------------------------------------------------------ the run
    def on_run_updated(self, _: RunUpdated) -> None:
        if not self.screen_stack:  # the app is closing: an update can still arrive, with nothing to show it
            return
        self._show_notices()
        store = self.store
        with store.lock:
            run = store.run
            controls = (run.state, run.hello is None, run.read_only, len(store.params.specs))
        if controls != self._controls_seen:  # what the footer offers depends on these
            self._controls_seen = controls
            self.refresh_bindings()

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
                lr = self.dashboard.params.latest(self.store.params.specs["lr"])
                self.send(Command(action="set", name="lr", value=lr / 2, source="ui"))
            if answer is not None:
                self.send(Command(action="resume", source="ui"))

        self.push_screen(ChoiceScreen("Training diverged", text, choices), chosen)

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

    # ---------------------------------------------------------------------------- commands
    def send(self, cmd: Command, on_failure: Callable[[], None] | None = None) -> None:
        """Queue a command for the run and return at once; the send worker delivers it, in order.
        A failure is shown, and ``on_failure`` runs, on the UI thread."""
        self.outbox.put((cmd, on_failure))

    @property
    def sending(self) -> bool:
        """Commands queued or on their way."""
        return self.outbox.unfinished_tasks > 0

    @work(thread=True, exclusive=True, group="send")
    def deliver_commands_forever(self) -> None:
        """The one place a command meets the pipe or the socket (a blocking write, a connect with
        a timeout): a thread, so the UI never waits on the run."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                cmd, on_failure = self.outbox.get(timeout=0.25)
            except queue.Empty:
                continue
            try:
                self.link.send(cmd)
            except LinkClosed as err:
                self.post_message(CommandFailed(str(err), on_failure))
            finally:
                self.outbox.task_done()

    def on_command_failed(self, message: CommandFailed) -> None:
        self.notify(message.reason, severity="error")
        if message.on_failure is not None:
            message.on_failure()

    # ------------------------------------------------------------------- what a key can do now
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Pause shows while running, Resume while paused; a key the run cannot take is dimmed
        (``None``), and pressing it says why (``on_key``)."""
        paused = self.store.run.state == "paused"
        if (action == "pause" and paused) or (action == "resume" and not paused):
            return False
        return None if self.why_unavailable(action) else True

    def why_unavailable(self, action: str, parameters: tuple[object, ...] = ()) -> str | None:
        run = self.store.run
        if action in RUN_ACTIONS:
            if run.finished:
                return f"the run has {run.state}: commands no longer reach it"
            if run.read_only:
                return "attached read-only"
            if run.hello is None:
                return "the run has not said hello yet: nothing listens"
            if run.hello.controls and action not in run.hello.controls:
                return "a command without the neurotop SDK cannot do that (pause, note and stop work)"
        if action == "restart":
            if not run.finished:
                return "the run is still going: stop it first (q, then s)"
            if self.link is None or not self.link.argv:
                return "its command is unknown"
        return None

    def on_key(self, event) -> None:
        """A key whose action is unavailable now does nothing: say why instead."""
        active = self.screen.active_bindings.get(event.key)
        if active is None or active.enabled:
            return
        _, name, arguments = parse(active.binding.action)
        why = getattr(active.node, "why_unavailable", None)
        reason = why(name, arguments) if why is not None else None
        self.notify(f"{active.binding.description}: {reason or 'not available now'}", severity="warning", timeout=4)

    # ------------------------------------------------------------------------- run-level keys
    def action_pause(self) -> None:
        self.send(Command(action="pause", source="ui"))
        plain = self.store.run.hello is not None and bool(self.store.run.hello.controls)
        self.notify("pausing…" if plain else "pausing at the next step…", timeout=2)

    def action_resume(self) -> None:
        self.send(Command(action="resume", source="ui"))
        self.notify("resuming…", timeout=2)

    def action_checkpoint(self) -> None:
        self.send(Command(action="checkpoint", source="ui"))
        self.notify("checkpoint asked for", timeout=2)

    def action_note(self) -> None:
        def typed(text: str | None) -> None:
            if text and text.strip():
                self.send(Command(action="note", text=text.strip(), source="ui"))

        self.push_screen(PromptScreen(f"Note at step {self.store.run.step:,}", "Journaled with the step and time."), typed)

    def action_next_theme(self) -> None:
        names = self.theme_names or [self.theme]
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    def action_pathways(self) -> None:
        self.push_screen(PathwaysScreen())

    def action_diagnostics(self) -> None:
        self.push_screen(DiagnosticsScreen(self.store, str(self.link.run_dir) if self.link else "", self.link.pid if self.link else None))

    def action_restart(self) -> None:
        """Start the run again as a new run: from its last checkpoint when there is one, with the
        current parameter values. Asks first."""
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
        self._diverged_seen = 0
        self.link = old.respawn(run_dir, self.store, env)
        self.notify(f"restarted as {run_dir.name}")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen.active_bindings))

    def action_quit_run(self) -> None:
        """Once the run has ended (or is only watched) there is nothing to decide: quit at once.
        While it goes on: stop it, or leave it running."""
        if self.store.run.finished or self.link is None or self.store.run.read_only:
            self.exit(None)
            return
        self.push_screen(QuitScreen(attach_command(self.link.run_dir)), self._quit_chosen)

    def action_help_quit(self) -> None:
        """Ctrl-C, which a person presses to leave: the same as q."""
        self.action_quit_run()

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
