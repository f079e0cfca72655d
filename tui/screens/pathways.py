"""`v`: the pathways screen — what the network learned, beside the loss.

Neuron health per layer over the run, gradient flow, one layer's units over time, the latent
space, the chain of layers with the signal on each edge, and the notes timeline. Every pane
repaints from the same ``RunStore`` as the dashboard, on a timer, and only when its part of the
store moved. ``o`` picks another run to compare with (the App's ``Compare``: its loss is drawn
dimmed on the dashboard's chart, its health and gradients under this run's, aligned by step);
``--compare RUN`` does the same from the command line. Esc or `v` goes back.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from neurotop.trainer import journal
from neurotop.tui.format import fit, one_line
from neurotop.tui.store import RunStore
from neurotop.tui.widgets.gradients import GradientsPane
from neurotop.tui.widgets.health import HealthPane, UnitHistoryPane
from neurotop.tui.widgets.latent import LatentPlot
from neurotop.tui.widgets.notes import NotesPane
from neurotop.tui.widgets.pathway import PathwayPane

#: What the `o` picker offers: the newest runs first.
MAX_RUNS_LISTED = 50


class RunPicker(ModalScreen[Path | str | None]):
    """Pick a run to compare with (Enter), or stop comparing; Esc cancels."""

    BINDINGS = [Binding("escape,o", "dismiss(None)", "Cancel", id="picker.cancel")]

    def __init__(self, runs: list[tuple[Path, journal.RunInfo]], comparing: bool) -> None:
        super().__init__()
        self.runs, self.comparing = runs, comparing

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-dialog"):
            yield Static("[b]Compare with another run[/b]  [dim]Enter picks, Esc cancels[/dim]")
            options = [Option("(stop comparing)", id="none")] if self.comparing else []
            for run_dir, info in self.runs:
                # the id's unique prefix (its date and time, what attach takes), not a cut through the name
                label = f"{fit(one_line(info.name), 24)} {info.effective_state():<9} {info.step:>9,}  {run_dir.name[:20]}"
                options.append(Option(escape(label), id=str(run_dir)))
            if not options:
                options.append(Option("no other runs here", id="empty", disabled=True))
            yield OptionList(*options, id="picker-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        choice = event.option.id
        self.dismiss("none" if choice == "none" else Path(choice) if choice not in (None, "empty") else None)


class PathwaysScreen(Screen):
    BINDINGS = [
        Binding("escape,v", "back", "Back", id="pathways.back"),
        # the panes name these keys in their borders ("[ ] layer · s: sort", "m: …", "u: …"), so the
        # footer keeps its room for Back, Compare and the run's keys (? and q fit at 80 columns)
        Binding("left_square_bracket", "layer(-1)", "Previous layer", id="pathways.previous", show=False),
        Binding("right_square_bracket", "layer(1)", "Next layer", id="pathways.next", show=False),
        Binding("s", "sort", "Sort units", id="pathways.sort", show=False),
        Binding("m", "metric", "Health", id="pathways.metric", show=False),
        Binding("u", "measure", "Grad/update", id="pathways.measure", show=False),
        Binding("o", "compare", "Compare", id="pathways.compare"),
    ]  # n (a note), p, c, ?, q: the app's run-level keys work here too

    def compose(self) -> ComposeResult:
        yield Static("", id="pw-header")
        with Horizontal(id="pw-main"):
            with Vertical(id="pw-left"):
                yield HealthPane(id="pw-health")
                yield GradientsPane(id="pw-gradients")
                yield UnitHistoryPane(id="pw-history")
            with Vertical(id="pw-right"):
                yield LatentPlot(id="pw-latent")
                yield PathwayPane(id="pw-pathway")
                yield NotesPane(id="pw-notes")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        app = self.app
        self.set_interval(1 / getattr(app, "refresh_hz", 4.0), self.repaint_text)
        self.set_interval(1 / getattr(app, "pictures_hz", 1.0), self.repaint_pictures)
        self.call_after_refresh(self.repaint_all)

    # ---------------------------------------------------------------------------- painting
    @property
    def store(self) -> RunStore:
        return self.app.store

    @property
    def compare(self) -> RunStore | None:
        compare = getattr(self.app, "compare", None)
        return compare.store if compare is not None else None

    def repaint_all(self) -> None:
        self.repaint_text()
        self.repaint_pictures()

    def repaint_text(self) -> None:
        store, compare = self.store, self.compare
        self.query_one(NotesPane).refresh_from(store)
        self.query_one(PathwayPane).refresh_from(store)
        with store.lock:
            run = store.run
            dead = sorted(store.insights.health.dead)
            parts = [f"[b]neurotop[/b] › pathways  {escape(run.name or '…')}", f"step {run.step:,}", f"{run.state}"]
        if dead:
            parts.append(f"[$error]⚠ dead: {escape(', '.join(dead))}[/]")
        if compare is not None:
            parts.append(f"[dim]≈ compared: {escape(compare.run.name)} (step {compare.run.step:,})[/dim]")
        self.query_one("#pw-header", Static).update("  ".join(parts))

    def repaint_pictures(self) -> None:
        store, compare = self.store, self.compare
        for pane in (self.query_one(HealthPane), self.query_one(GradientsPane), self.query_one(UnitHistoryPane),
                     self.query_one(LatentPlot)):
            pane.refresh_from(store, compare)

    # ------------------------------------------------------------------------------ actions
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_layer(self, delta: int) -> None:
        pane = self.query_one(UnitHistoryPane)
        if pane.step_layer(self.store, delta) is None:
            self.notify("no layer has reported its health yet", severity="warning", timeout=3)

    def action_sort(self) -> None:
        pane = self.query_one(UnitHistoryPane)
        self.notify(f"units sorted by {pane.cycle_sort()}", timeout=2)
        pane.refresh_from(self.store)

    def action_metric(self) -> None:
        pane = self.query_one(HealthPane)
        self.notify(f"health coloured by {pane.cycle_metric()}", timeout=2)
        pane.refresh_from(self.store, self.compare)

    def action_measure(self) -> None:
        pane = self.query_one(GradientsPane)
        self.notify(f"gradient flow: {pane.cycle_measure()}", timeout=2)
        pane.refresh_from(self.store, self.compare)

    def action_compare(self) -> None:
        app = self.app
        link = getattr(app, "link", None)
        root = link.run_dir.parent if link is not None else journal.runs_root(None)
        own = link.run_dir.resolve() if link is not None else None
        runs = [(d, info) for d, info in journal.list_runs(root) if d.resolve() != own][:MAX_RUNS_LISTED]

        def chosen(choice: Path | str | None) -> None:
            if choice is None:
                return
            if choice == "none":
                app.compare.close()
                self.notify("no longer comparing", timeout=2)
            else:
                store = app.compare.open(choice)
                self.notify(f"comparing with {store.run.name}", timeout=3)
            self.repaint_all()

        app.push_screen(RunPicker(runs, comparing=self.compare is not None), chosen)
