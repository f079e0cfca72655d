"""The main screen: the run's panes, repainted on two clocks while the screen is shown.

Keys and focus: each pane declares its own ``BINDINGS`` (the loss chart zoom, pan, log, smoothing
and outliers; the params pane select, step and edit; the activations pane ``[``/``]``), and this
screen forwards them: every pane binding is also bound here, same key, same id, same description,
as ``pane('<pane id>', '<action>')``, which runs the action on that pane (and asks the pane's
``check_action``). So ``+`` steps the selected parameter and ``z`` zooms the chart wherever focus
is, a user keymap rebinds them by id, and the footer and help list them. The output pane is the
one pane that takes focus (the only focusable widget here, so it has it): its reading keys
(PgUp/PgDn, Home/End, ``/`` and, during a search, ``n``/``N``/Esc) are its own, and the keys it
does not use go on to the screen.
"""

from __future__ import annotations

import dataclasses

from textual.actions import parse
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from neurotop.trainer.params import Refused
from neurotop.tui.param_input import parse_typed
from neurotop.tui.screens.edit import PromptScreen
from neurotop.tui.store import RunStore
from neurotop.tui.widgets.activations import ActivationsPane
from neurotop.tui.widgets.header import RunHeader
from neurotop.tui.widgets.log_pane import LogPane
from neurotop.tui.widgets.loss_chart import LossChart
from neurotop.tui.widgets.params_pane import ParamsPane
from neurotop.tui.widgets.reconstructions import ReconstructionsPane
from neurotop.tui.widgets.system_pane import SystemPane

NARROW_WIDTH = 110
TINY_WIDTH, TINY_HEIGHT = 70, 20  # below either: the loss and the params only
TITLES = {"loss": "Loss", "system": "System", "params": "Params", "log": "Output",
          "activations": "Activations", "reconstructions": "Reconstructions"}  # the header has none
#: The panes whose own bindings this screen forwards, by the pane's id.
KEYED_PANES = {"params": ParamsPane, "loss": LossChart, "activations": ActivationsPane}


def forwarded(pane_id: str, bindings: list[Binding]) -> list[Binding]:
    """A pane's bindings, bound on the screen to run on the pane."""
    return [dataclasses.replace(b, action=f"pane({pane_id!r}, {b.action!r})") for b in bindings]


class DashboardScreen(Screen):
    BINDINGS = [b for pane_id, pane in KEYED_PANES.items() for b in forwarded(pane_id, pane.BINDINGS)]

    def __init__(self, *, refresh_hz: float, pictures_hz: float, show_ui_cost: bool) -> None:
        super().__init__()
        self.refresh_hz, self.pictures_hz, self.show_ui_cost = refresh_hz, pictures_hz, show_ui_cost
        self._clocks = []

    def compose(self) -> ComposeResult:
        self.run_header = RunHeader(show_ui_cost=self.show_ui_cost, id="header")
        self.chart, self.activations = LossChart(id="loss"), ActivationsPane(id="activations")
        self.reconstructions = ReconstructionsPane(id="reconstructions")
        self.system_pane, self.params = SystemPane(id="system"), ParamsPane(self.app.send, id="params")
        self.output = LogPane(id="log")
        self.text_panes = (self.run_header, self.system_pane, self.params)
        self.picture_panes = (self.chart, self.activations, self.reconstructions, self.output)
        for pane in (*self.text_panes, *self.picture_panes):
            pane.border_title = TITLES.get(pane.id, "")
        yield self.run_header
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield from (self.chart, self.activations, self.reconstructions)
            with Vertical(id="right"):
                yield from (self.system_pane, self.params, self.output)
        yield Footer(compact=True)

    @property
    def store(self) -> RunStore:
        """The App's: a restart hands it a new one, which the panes follow (its versions are new)."""
        return self.app.store

    def on_mount(self) -> None:
        self._clocks = [self.set_interval(1 / self.refresh_hz, self.repaint_text),
                        self.set_interval(1 / self.pictures_hz, self.repaint_pictures)]
        self.call_after_refresh(self.repaint_all)

    # ----------------------------------------------------------------------------- clocks
    def on_screen_suspend(self) -> None:
        """Another screen covers this one (pathways): stop painting what nobody sees. A dialog
        over it leaves it visible, so it keeps painting."""
        if not self.app.screen.is_modal:
            for clock in self._clocks:
                clock.pause()

    def on_screen_resume(self) -> None:
        for clock in self._clocks:
            clock.resume()
        self.repaint_all()

    # ---------------------------------------------------------------------------- painting
    def repaint_all(self) -> None:
        self.repaint_text()
        self.repaint_pictures()

    def repaint_text(self) -> None:
        """The fast clock, for the text panes: each redraws only if its part of the store changed."""
        for pane in self.text_panes:
            pane.refresh_from(self.store)

    def repaint_pictures(self) -> None:
        """The slow clock, for the chart, the heatmaps and the log: each repaint rewrites the whole
        pane (a scrolling log included), which is what costs bytes over SSH (see `make bench`)."""
        for pane in self.picture_panes:
            pane.refresh_from(self.store)

    def on_resize(self, event) -> None:
        width, height = event.size
        self.set_class(width < NARROW_WIDTH, "narrow")
        self.set_class(width < TINY_WIDTH or height < TINY_HEIGHT, "tiny")

    # ------------------------------------------------------------------------------ keys
    async def action_pane(self, pane_id: str, action: str) -> None:
        await self.query_one(f"#{pane_id}").run_action(action)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action != "pane":
            return True
        pane_id, inner = parameters
        _, name, arguments = parse(inner)
        return self.query_one(f"#{pane_id}").check_action(name, arguments)

    def why_unavailable(self, action: str, parameters: tuple[object, ...] = ()) -> str | None:
        """Why a forwarded key does nothing now (the pane says), for the notice and the help."""
        if action != "pane":
            return None
        pane_id, inner = parameters
        _, name, arguments = parse(inner)
        why = getattr(self.query_one(f"#{pane_id}"), "why_unavailable", None)
        return why(name, arguments) if why is not None else None

    def on_params_pane_edit_requested(self, message: ParamsPane.EditRequested) -> None:
        spec, pane = message.spec, message.control
        bounds = " | ".join(spec.choices) if spec.choices else f"{spec.min} … {spec.max}"

        def typed(text: str | None) -> None:
            if text is None:
                return
            try:
                pane.request(spec.name, parse_typed(spec, text))
            except Refused as err:
                self.notify(f"{spec.name}: {err}", severity="error")

        self.app.push_screen(PromptScreen(f"Set {spec.name}", f"{spec.kind}, {bounds}. Enter sends, Esc cancels.",
                                          value=str(pane.latest(spec))), typed)

