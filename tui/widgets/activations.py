"""The activations pane: one layer at a time, units across and samples down.

Units run along x so a dead unit (zero for every sample) is a dark column, the shape a person
looks for. The pane reads the store only when ``store.insights.activations.version`` moved, and decodes a
snapshot only when the layer on screen got a new one.
"""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.markup import escape
from textual.reactive import var

from neurotop.trainer.protocol import Activations
from neurotop.tui.format import fit_parts, one_line
from neurotop.tui.store import DeadUnits, RunStore
from neurotop.tui.widgets.heatmap import Heatmap, shaped_cells


def decode_cells(msg: Activations) -> np.ndarray:
    """The snapshot as rows (units) × cols (samples) of uint8; a short message pads with 0."""
    return shaped_cells(msg.cells, msg.rows, msg.cols)


class ActivationsPane(Vertical):
    """A layer's latest activations as a heatmap, its name and step in the border title, its
    value range and dead-unit count in the border subtitle. Shown once a snapshot has come
    (class ``-live``): a run without probes gives its room to the chart."""

    BINDINGS = [
        Binding("left_square_bracket", "layer(-1)", "Previous layer", id="activations.previous", show=False),
        Binding("right_square_bracket", "layer(1)", "Next layer", id="activations.next", show=False),
    ]

    current_layer: var[str | None] = var(None)  # the layer on screen

    DEFAULT_CSS = """
    ActivationsPane { height: 1fr; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "Activations"
        self.layer_names: list[str] = []
        self.dead: DeadUnits | None = None  # the store's figure for the layer on screen
        self._store: RunStore | None = None
        self._version: tuple | None = None
        self._shown: Activations | None = None
        self._shown_dead: DeadUnits | None = None
        self.heatmap = Heatmap()

    def compose(self) -> ComposeResult:
        yield self.heatmap

    def refresh_from(self, store: RunStore) -> None:
        """Take a new snapshot from ``store`` if there is one (cheap when nothing changed)."""
        self._store = store
        with store.lock:
            version = (store.insights.activations.version, store.insights.health.version)
            if version == self._version:
                return
            self._version = version
            self._sync_layers(store)
            msg = store.insights.activations.items.get(self.current_layer) if self.current_layer is not None else None
            self.dead = store.insights.dead_units(msg.layer) if msg is not None else None
        self._show(msg)

    def action_layer(self, delta: int) -> None:
        """Show the next (1) or previous (-1) layer, wrapping around."""
        if not self.layer_names:
            return
        index = self.layer_names.index(self.current_layer) if self.current_layer in self.layer_names else 0
        self.current_layer = self.layer_names[(index + delta) % len(self.layer_names)]

    def next_layer(self) -> None:
        self.action_layer(1)

    def previous_layer(self) -> None:
        self.action_layer(-1)

    def watch_current_layer(self, layer: str | None) -> None:
        if self._store is None or layer is None:
            return
        with self._store.lock:
            msg = self._store.insights.activations.items.get(layer)
            self.dead = self._store.insights.dead_units(layer)
        self._show(msg)

    # ------------------------------------------------------------------------------ internals

    def _sync_layers(self, store: RunStore) -> None:
        """Layers in model order when the hello names them, else in order of first arrival."""
        seen = list(store.insights.activations.items)
        hello = store.run.hello
        model = [layer.name for layer in hello.model] if hello is not None else []
        rank = {name: i for i, name in enumerate(model)}
        self.layer_names = sorted(seen, key=lambda n: (0, rank[n]) if n in rank else (1, seen.index(n)))
        if self.current_layer not in self.layer_names:
            self.current_layer = self.layer_names[0] if self.layer_names else None

    def _show(self, msg: Activations | None) -> None:
        self.set_class(bool(self.layer_names), "-live")  # no snapshot yet: the pane takes no room
        if msg is self._shown and msg is not None and self.dead == self._shown_dead:
            self._set_title(msg)  # the layer list may have grown: the position changed
            return
        self._shown, self._shown_dead = msg, self.dead
        self._set_title(msg)
        if msg is None:
            self.border_subtitle = ""
            self.heatmap.set_data(None)
            return
        cells = decode_cells(msg)
        hi = msg.lo + 255 * msg.scale
        legend = f"{msg.lo:.3g} … {hi:.3g}"
        if self.dead is not None:  # counted over rows that each stand for a group of units: say so
            legend += f" · dead {self.dead}" + (" groups" if self.dead.units < msg.units else "")
        self.border_subtitle = legend
        self.heatmap.set_data(cells.T)  # units across, samples down

    def on_resize(self) -> None:
        self._set_title(self._shown)

    def _set_title(self, msg: Activations | None) -> None:
        """The layer selector first, then the layer, then as much of its shape as fits: a narrow
        pane drops whole figures from the end, never the selector or the name."""
        if msg is None:
            self.border_title = "Activations"
            return
        units = msg.units or msg.rows
        nav = f"◂ {self.layer_names.index(msg.layer) + 1}/{len(self.layer_names)} ▸" \
            if len(self.layer_names) > 1 and msg.layer in self.layer_names else ""
        shape = f"{units:,} units" + (f" in {msg.rows} rows" if units > msg.rows else "")
        parts = [p for p in ("Activations", nav, one_line(msg.layer)) if p]
        room = max(0, self.outer_size.width - 7 - len(" ".join(parts))) if self.outer_size.width else 200
        more = fit_parts([f"({shape} × {msg.cols} samples)", f"step {msg.step:,}"], room, " ")
        self.border_title = escape(" ".join(parts + ([more] if more else [])))
