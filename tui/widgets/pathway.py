"""The pathway: the model's layers as a chain (from ``hello.model``), each with its kind and
shape, and on each edge how much signal passes (mean |output| on the probe's batch, from the
latest ``Signal``, else the layer's ``Health``), as a bar coloured through the heat ramp. Dead and
saturated units, and each weight layer's gradient norm, are noted beside it.
"""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from neurotop.tui.format import fit, one_line
from neurotop.tui.store import RunStore
from neurotop.tui.widgets.colours import theme_colour
from neurotop.tui.widgets.heatmap import Ramp


def shape_text(kind: str, shape: list[int]) -> str:
    """``64→32`` for a dense layer, ``3→16 3×3`` for a convolution, else the shape."""
    if len(shape) == 2 and kind in ("Linear", "LazyLinear", "Bilinear"):
        return f"{shape[1]}→{shape[0]}"
    if len(shape) >= 3 and kind.startswith("Conv"):
        return f"{shape[1]}→{shape[0]} " + "×".join(str(k) for k in shape[2:])
    return "×".join(str(k) for k in shape)


class PathwayPane(Static):
    """The chain of layers and the signal on each edge."""

    DEFAULT_CSS = """
    PathwayPane { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.border_title = "Pathway"
        self._seen: tuple | None = None
        self.lines: list[str] = []  # the plain text of each drawn line (for tests)

    def refresh_from(self, store: RunStore, compare: RunStore | None = None) -> None:
        insights = store.insights
        key = (insights.signal.version, insights.health.version, insights.gradients.version,
               id(store.run.hello), self.size.width, self.app.theme)
        if key == self._seen:
            return
        self._seen = key
        with store.lock:
            layers = self._layers(store)
            signal, latest = {}, insights.signal.value
            if latest is not None:
                signal = {n: v for n, v in zip(latest.layers, latest.mean_abs) if v is not None}
            health = {n: h.latest for n, h in insights.health.layers.items() if h.latest is not None}
            for name, msg in health.items():
                signal.setdefault(name, msg.signal)
            dead_units = {name: insights.dead_units(name) for name in health}
            grads = {}
            flow = insights.gradients.value
            if flow is not None and flow.latest is not None:
                grads = dict(zip(flow.latest.layers, flow.latest.grad_norm))
            dead = set(insights.health.dead)
            step = latest.step if latest is not None else None
        text = self._draw(layers, signal, health, dead_units, grads, dead)
        self.border_subtitle = f"mean |output| at step {step:,}" if step is not None else "mean |output|"
        self.update(text)

    @staticmethod
    def _layers(store: RunStore) -> list[tuple[str, str, str, int]]:
        """(name, kind, shape text, params) in model order; without a model description, the
        layers the probes named."""
        hello, signal = store.run.hello, store.insights.signal.value
        if hello is not None and hello.model:
            return [(x.name, x.kind, shape_text(x.kind, x.shape), x.params) for x in hello.model]
        names = list(signal.layers) if signal is not None else list(store.insights.health.layers)
        return [(n, "", "", 0) for n in names]

    def _draw(self, layers, signal, health, dead_units, grads, dead) -> Text:
        self.lines = []
        text = Text(no_wrap=True, overflow="ellipsis")
        if not layers:
            text.append("no model description yet (Monitor(model) sends it)", Style(dim=True))
            return text
        ramp = None if getattr(self.app, "no_color", False) else Ramp.for_app(self.app)
        error = Style(color=theme_colour(self.app, "error", "#EE6055").hex, bold=True)
        dim = Style(dim=True)
        width = max(40, self.size.width or 60)
        name_w = min(16, max(len(n) for n, *_ in layers) + 1)
        kind_w = min(9, max((len(k) for _, k, *_ in layers), default=0) + 1)
        shape_w = min(10, max((len(s) for _, _, s, _ in layers), default=0) + 1)
        peak = max((v for v in signal.values() if math.isfinite(v)), default=0.0) or 1.0
        first_in = _input_width(layers)
        if first_in:
            line = f"  input {first_in}"
            text.append(line + "\n", dim)
            self.lines.append(line)
        notes_of = {name: self._notes(name, health, dead_units, grads, dead, error, dim) for name, *_ in layers}
        notes_w = max((sum(len(t) for t, _ in n) for n in notes_of.values()), default=0)
        if 2 + name_w + kind_w + shape_w + 7 + notes_w + 8 > width:  # narrow: the essentials only
            kind_w = shape_w = 0
            notes_of = {name: [n for n in notes if n[0].startswith(" dead")] for name, notes in notes_of.items()}
            notes_w = max((sum(len(t) for t, _ in n) for n in notes_of.values()), default=0)
        bar_w = max(4, width - (2 + name_w + kind_w + shape_w + 7 + notes_w))
        for i, (name, kind, shape, params) in enumerate(layers):
            connector = "┌" if i == 0 and len(layers) > 1 else "└" if i == len(layers) - 1 else "├"
            start = len(text)
            text.append(f"{connector} ", dim)
            text.append(fit(one_line(name), name_w - 1) + " ", error if name in dead else Style())
            if kind_w:
                text.append(fit(one_line(kind), kind_w - 1) + " " + fit(shape, shape_w - 1) + " ", dim)
            value = signal.get(name)  # the number first: it lines up whatever the bar's glyphs
            if value is None:
                text.append("     - " + "╌" * bar_w, dim)
            else:
                level = max(0.0, min(1.0, value / peak))
                filled = max(1, round(level * bar_w))
                colour = ramp.colors[int(level * 255)] if ramp is not None else None
                text.append(f"{value:6.3g} ", Style())
                text.append("━" * filled, Style(color=colour) if colour is not None else Style(bold=True))
                text.append(" " * (bar_w - filled), Style())
            for note, style in notes_of[name]:
                text.append(note, style)
            self.lines.append(text.plain[start:])
            if i < len(layers) - 1:
                text.append("\n")
        return text


    @staticmethod
    def _notes(name, health, dead_units, grads, dead, error, dim) -> list[tuple[str, Style]]:
        """What follows a layer's bar: dead and saturated units, the gradient norm."""
        notes = []
        h = health.get(name)
        if h is not None and h.units:
            units = dead_units.get(name)
            if units is not None and units.dead:
                notes.append((f" dead {units}", error if name in dead else Style()))
            if h.saturated:
                notes.append((f" sat {h.saturated}/{h.units}", dim))
        if name in grads:
            g = grads[name]
            notes.append((" ∇ non-finite" if g is None else f" ∇{g:.1e}", error if g is None else dim))
        return notes


def _input_width(layers) -> str:
    shape = layers[0][2]
    if "→" in shape:
        return shape.split("→")[0] + " features"
    return ""
