"""The activations pane: one layer at a time, units across and samples down.

Units run along x so a dead unit (zero for every sample) is a dark column, the shape a person
looks for. The pane reads the store only when ``store.insights.activations.version`` moved, and decodes a
snapshot only when the layer on screen got a new one.
"""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape

from neurotop.trainer.protocol import Activations
from neurotop.tui.store import DeadUnits, RunStore
from neurotop.tui.widgets.heatmap import Heatmap, shaped_cells


def decode_cells(msg: Activations) -> np.ndarray:
    """The snapshot as rows (units) × cols (samples) of uint8; a short message pads with 0."""
    return shaped_cells(msg.cells, msg.rows, msg.cols)


class ActivationsPane(Vertical):
    """A layer's latest activations as a heatmap, its name and step in the border title, its
    value range and dead-unit count in a legend under the picture."""

    DEFAULT_CSS = """
    ActivationsPane { height: 1fr; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "Activations"
        self.layer_names: list[str] = []
        self.current_layer: str | None = None  # the layer on screen
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

    def next_layer(self) -> None:
        """Show the next layer (wraps around)."""
        self._step(+1)

    def previous_layer(self) -> None:
        """Show the previous layer (wraps around)."""
        self._step(-1)

    # ------------------------------------------------------------------------------ internals
    def _step(self, delta: int) -> None:
        if not self.layer_names:
            return
        index = self.layer_names.index(self.current_layer) if self.current_layer in self.layer_names else 0
        self.current_layer = self.layer_names[(index + delta) % len(self.layer_names)]
        msg = None
        if self._store is not None:
            with self._store.lock:
                msg = self._store.insights.activations.items.get(self.current_layer)
                self.dead = self._store.insights.dead_units(self.current_layer)
        self._show(msg)

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
        if msg is self._shown and msg is not None and self.dead == self._shown_dead:
            self._set_title(msg)  # the layer list may have grown: the position changed
            return
        self._shown, self._shown_dead = msg, self.dead
        self._set_title(msg)
        if msg is None:
            self.heatmap.set_data(None)
            return
        cells = decode_cells(msg)
        hi = msg.lo + 255 * msg.scale
        legend = f"{msg.lo:.3g} … {hi:.3g}   dead: {self.dead}" if self.dead is not None else f"{msg.lo:.3g} … {hi:.3g}"
        self.heatmap.set_data(cells.T, legend)  # units across, samples down

    def _set_title(self, msg: Activations | None) -> None:
        if msg is None:
            self.border_title = "Activations"
            return
        units = msg.units or msg.rows
        shape = f"{units:,} units" + (f" in {msg.rows} rows" if units > msg.rows else "")
        nav = f"  ◂ {self.layer_names.index(msg.layer) + 1}/{len(self.layer_names)} ▸" if len(self.layer_names) > 1 else ""
        self.border_title = escape(f"Activations: {msg.layer} ({shape} × {msg.cols} samples) step {msg.step:,}{nav}")
