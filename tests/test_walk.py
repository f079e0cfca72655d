"""Issue 11: every key the help lists, pressed in turn, on a live SDK run, a plain script and an
attached finished run, at 120×40 and 80×24: nothing raises, and each key does on screen what its
description says where that can be checked (a dialog opens and Esc closes it, pause shows paused,
help lists the keys that are live, log-y and smoothing show on the chart, the theme changes).

The keys are read from the live bindings of the screen shown (``Screen.active_bindings``), not
from a list kept here: the walk follows the app wherever its bindings live. What a key must do is
looked up by its binding id (the names ``keymap.toml`` rebinds by); a key with an id not known
here is still pressed and must not break anything.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from textual.screen import ModalScreen

from tests.conftest import scripted, until
from tests.journals import demo_messages, write_run
from neurotop.trainer import journal
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link, python_argv

SIZES = [(120, 40), (80, 24)]
# Textual's own bindings, which the help does not list: focus, copy, and ctrl+q (which ends the walk).
TEXTUAL_ACTIONS = {"app.focus_next", "app.focus_previous", "screen.copy_text", "quit", "app.quit",
                   "command_palette", "app.command_palette"}
# What a key opens, by binding id. A key that cannot do it here must say why (a toast) instead.
OPENS = {
    "app.help": "HelpScreen",
    "app.diagnostics": "DiagnosticsScreen",
    "app.quit": "QuitScreen",  # or, on a run that has ended, quitting at once (walked last)
    "app.pathways": "PathwaysScreen",
    "params.edit": "PromptScreen",
    "run.note": "PromptScreen",
    "pathways.note": "PromptScreen",
    "pathways.compare": "RunPicker",
    "run.restart": "ChoiceScreen",
}
PLAIN_SCRIPT = ("import math, time\n"
                "for i in range(1, 10**7):\n"
                "    print(f'step {i} loss {math.exp(-i / 300) + 0.01:.4f}', flush=True)\n"
                "    time.sleep(0.005)\n")


# ------------------------------------------------------------------------------------- runs
def sdk_app(runs: Path) -> NeurotopApp:
    """A live run of the fake SDK child (params, pause, checkpoint, activations)."""
    return spawned(runs, scripted("--rate", "200"), "scripted")


def plain_app(runs: Path) -> NeurotopApp:
    """`neurotop run -- python script.py`: a script that only prints, started as the CLI starts it
    under its supervisor."""
    argv, run_dir = [sys.executable, "-c", PLAIN_SCRIPT], journal.create_run_dir(runs, "plain")
    return NeurotopApp(lambda store, notify: Link.supervise(argv, run_dir, store, notify), name="plain",
                       sample_system=False)


def demo_app(runs: Path) -> NeurotopApp:
    return spawned(runs, python_argv("neurotop.trainer.demo", []), "autoencoder-digits")


def spawned(runs: Path, argv: list[str], name: str) -> NeurotopApp:
    run_dir = journal.create_run_dir(runs, name)
    return NeurotopApp(lambda store, notify: Link.spawn(argv, run_dir, store, notify), name=name, sample_system=False)


def finished_app(runs: Path) -> NeurotopApp:
    """`neurotop attach` to a run that has ended (read-only, as the CLI opens it)."""
    run_dir = write_run(runs, demo_messages())
    return NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), name="fixed",
                       sample_system=False, read_only=True)


RUNS = {"sdk": sdk_app, "plain": plain_app, "finished": finished_app}


def started(app: NeurotopApp) -> bool:
    run = app.store.run
    return run.finished if run.read_only else run.step > 0


# ---------------------------------------------------------------------------- what is shown
def screen_text(app) -> str:
    """The characters on the terminal now (the screen on top)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def all_text(screen) -> str:
    """Everything the screen's widgets hold, scrolled into view or not."""
    parts = []
    for widget in screen.query("*"):
        try:
            parts.append(str(widget.render()))
        except Exception:  # containers and line-API widgets render nothing readable
            pass
    return "\n".join(parts)


def listed(screen) -> dict[str, object]:
    """The keys the help lists on ``screen``: its live bindings, less Textual's own."""
    return {key: active for key, active in screen.active_bindings.items()
            if active.binding.action not in TEXTUAL_ACTIONS}


def one_key_each(screen, pick: int) -> list[tuple[str, object]]:
    """One key per binding (``pick``: its first or its last key), so that keys for the same action
    are not walked twice at one size, and each is walked at one size or the other."""
    groups: dict[tuple, list] = {}
    for key, active in listed(screen).items():
        groups.setdefault((id(active.node), active.binding.id or active.binding.action), []).append((key, active))
    return sorted((keys[pick] for keys in groups.values()), key=lambda item: item[1].binding.id == "app.quit")


@dataclass
class Walk:
    app: NeurotopApp
    pilot: object
    pick: int = 0
    toasts: list[tuple[str, str]] = field(default_factory=list)
    pressed: list[str] = field(default_factory=list)
    quit: bool = False  # the quit key ended the app, as it says

    def toast_since(self, mark: int) -> str:
        return " | ".join(text for text, _ in self.toasts[mark:])

    async def wait(self, predicate, what: str, timeout: float = 10) -> None:
        try:
            await until(self.pilot, predicate, timeout)
        except AssertionError:
            raise AssertionError(f"{what}: not seen after {self.pressed[-6:]} (run {self.app.store.run.state}; "
                                 f"toasts {self.toasts[-4:]})") from None

    def healthy(self) -> None:
        assert self.app._exception is None and (self.app.is_running or self.quit), f"after {self.pressed}"

    async def press(self, key: str) -> None:
        self.pressed.append(key)
        await self.pilot.press(key)
        self.healthy()

    async def close(self, screen) -> None:
        """Esc closes what a key opened."""
        await self.press("escape")
        await self.wait(lambda: self.app.screen is not screen, f"Esc closing {type(screen).__name__}")

    async def walk(self, screen, opener: str | None = None) -> None:
        """Press each key listed on ``screen``; on a screen a key opens, walk that one's own keys too.
        A key that leaves the screen (its description says back or close) is followed by ``opener``."""
        for key, active in one_key_each(screen, self.pick):
            if opener and active.node is self.app and active.binding.id != "app.help":
                continue  # the app's keys were walked on the dashboard; its help is live here too
            await self.wait(lambda: self.app.screen is screen, f"back on {type(screen).__name__}")
            await self.check(screen, key, active)
            if self.quit:
                return
            if screen not in self.app.screen_stack:
                assert opener and any(word in active.binding.description.lower() for word in ("back", "close")), \
                    f"{key} ({active.binding.description}) left {type(screen).__name__}"
                below = self.app.screen
                await self.press(opener)
                await self.wait(lambda: self.app.screen is not below, f"{opener} reopening")
                screen = self.app.screen

    async def check(self, screen, key: str, active) -> None:
        app, binding, mark = self.app, active.binding, len(self.toasts)
        before_theme = app.theme
        self.quit = binding.id == "app.quit"
        await self.press(key)
        if self.quit and not app.is_running:
            return
        self.quit = False
        if not active.enabled:  # shown greyed out: it may do nothing, and must break nothing
            return
        opened = OPENS.get(binding.id)
        if opened:
            await self.wait(lambda: app.screen is not screen or len(self.toasts) > mark or not app.is_running,
                            f"{key} opening {opened}")
            if app.screen is screen:  # could not open here: it said why
                return
            shown = app.screen
            assert type(shown).__name__ == opened, f"{key} ({binding.description}) opened {type(shown).__name__}"
            if opened == "HelpScreen":
                help_text = all_text(shown)
                missing = {a.binding.description for a in listed(screen).values()} - {""}
                missing = {d for d in missing if d not in help_text}
                assert not missing, f"help on {type(screen).__name__} does not list {sorted(missing)}"
            if opened == "PathwaysScreen":
                await self.walk(shown, opener=key)
                shown = app.screen
            await self.close(shown)
            return
        if screen not in app.screen_stack:  # it closed the screen it was on (the caller checks)
            return
        if app.screen is not screen:  # a key not known here opened something: Esc must close it
            assert isinstance(app.screen, ModalScreen), f"{key} ({binding.description}) opened {app.screen}"
            await self.close(app.screen)
            return
        await self.effect(screen, key, binding, mark, before_theme)

    async def effect(self, screen, key, binding, mark, before_theme) -> None:
        """What the description promises, where it shows."""
        app, run = self.app, self.app.store.run
        if binding.id == "run.pause":
            live = not run.finished and not run.read_only
            refused = lambda: any(sev in ("warning", "error") for _, sev in self.toasts[mark:])
            header = lambda: screen_text(app).splitlines()[0]
            if not live:
                await self.wait(refused, "pause refused on a run that has ended")
                assert "paused" not in header()
                return
            await self.wait(lambda: "paused" in header() or refused(), "paused in the header")
            if "paused" in header():
                await self.press(key)  # and on again
                await self.wait(lambda: "paused" not in header(), "running again in the header")
            else:
                assert "paus" not in self.toast_since(mark), f"said {self.toast_since(mark)!r} and did not pause"
        elif binding.id in ("chart.log", "chart.smooth"):
            charts = screen.query("LossChart")
            if charts:
                word = "log y" if binding.id == "chart.log" else "smooth"
                await self.wait(lambda: word in str(charts.first().border_subtitle), f"{word} on the chart")
                if binding.id == "chart.log":
                    await self.press(key)
                    await self.wait(lambda: word not in str(charts.first().border_subtitle), f"{word} off the chart")
        elif binding.id == "app.theme":
            assert app.theme != before_theme
        elif binding.id == "output.search":  # keys are the search's text now: Esc drops it
            output = screen.query_one("LogPane")
            await self.wait(lambda: output.typing is not None and "search" in str(output.border_subtitle),
                            "a search being typed, in the output's subtitle")
            await self.press("escape")
            await self.wait(lambda: output.typing is None, "Esc dropping the search")


async def walk_every_key(app: NeurotopApp, size: tuple[int, int], pick: int = 0) -> None:
    toasts: list[tuple[str, str]] = []
    original = app.notify

    def notify(message, *args, severity="information", **kwargs):
        toasts.append((str(message), severity))
        return original(message, *args, severity=severity, **kwargs)

    app.notify = notify
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: started(app))
        walk = Walk(app, pilot, pick, toasts)
        home = app.screen
        # `?` then `q` closes the help too (issue 10)
        help_keys = [k for k, a in listed(home).items() if a.binding.id == "app.help"]
        if help_keys:
            await walk.press(help_keys[0])
            await walk.wait(lambda: app.screen is not home, "help opening")
            await walk.press("q")
            await walk.wait(lambda: app.screen is home, "q closing the help")
        await walk.walk(home)
        assert walk.pressed
        walk.healthy()
        if app.is_running and app.link is not None:
            app.link.detach()


def walks():
    for run in RUNS:
        for pick, size in enumerate(SIZES):
            yield pytest.param(run, size, -pick, id=f"{run}-{size[0]}x{size[1]}")


@pytest.mark.parametrize("run, size, pick", walks())
async def test_every_key_in_the_help(runs, run, size, pick):
    """At one size each binding's first key, at the other its last: every key, walked once."""
    await walk_every_key(RUNS[run](runs), size, pick)


@pytest.mark.slow
async def test_every_key_in_the_help_on_the_demo(runs):
    await walk_every_key(demo_app(runs), (120, 40))
