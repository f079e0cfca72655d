"""Heatmap, activations and reconstructions panes: the Strip builder, then the panes in an app."""

from __future__ import annotations

import numpy as np
import pytest
from rich.style import Style
from textual.app import App, ComposeResult
from textual.theme import Theme

from neurotop.trainer.protocol import Activations, Hello, LayerInfo, Sample
from neurotop.tui.store import DeadUnits, RunStore
from neurotop.tui.widgets.activations import ActivationsPane
from neurotop.tui.widgets.heatmap import (
    ASCII_RAMP,
    EMPTY_TEXT,
    NONE,
    Heatmap,
    Ramp,
    fit_indices,
    grid_strips,
    resample,
)
from neurotop.tui.widgets.reconstructions import ReconstructionsPane

COLD, MID, HOT = "#000080", "#808080", "#FF0000"
THEMES = [
    Theme(name="heat-a", primary="#4EA8DE", background="#0F141A", dark=True,
          variables={"heat-cold": COLD, "heat-mid": MID, "heat-hot": HOT}),
    Theme(name="heat-b", primary="#1D5FA8", background="#F7F7F2", dark=False,
          variables={"heat-cold": "#FFFFFF", "heat-mid": "#00FF00", "heat-hot": "#000000"}),
]


# ------------------------------------------------------------------------------ strip builder
def test_half_blocks_two_rows_per_line_with_distinct_styles():
    ramp = Ramp(COLD, MID, HOT)
    grid = np.array([[0, 255, 0], [255, 0, 0], [7, 7, 7]], np.uint8)
    base = Style(bgcolor="#123456")
    strips = grid_strips(grid, ramp, base)
    assert [s.text for s in strips] == ["▀▀▀", "▀▀▀"]
    first = list(strips[0])
    # three cells (0 over 255, 255 over 0, 0 over 0): three different styles, exact colours
    assert len({seg.style for seg in first}) == 3
    assert first[0].style.color.triplet.hex == COLD.lower()
    assert first[0].style.bgcolor.triplet.hex == HOT.lower()
    assert first[1].style.color.triplet.hex == HOT.lower()
    # the odd last row: upper half coloured, lower half the widget's background
    (last,) = list(strips[1])
    assert last.text == "▀▀▀"  # equal cells merge into one segment
    assert last.style.bgcolor == base.bgcolor
    assert ramp.styles[0] != ramp.styles[255] and len(ramp.styles) == 256


def test_missing_cells_show_the_background():
    ramp = Ramp(COLD, MID, HOT)
    base = Style(bgcolor="#123456")
    (strip,) = grid_strips(np.array([[NONE, 9, NONE], [NONE, NONE, 9]]), ramp, base)
    segments = list(strip)
    assert strip.text == " ▀▄"
    assert segments[0].style.bgcolor == base.bgcolor
    assert segments[1].style.bgcolor == base.bgcolor and segments[2].style.bgcolor == base.bgcolor


def test_ascii_ramp_without_colour():
    grid = np.array([[0, 128, 255], [255, 255, 0]], np.uint8)
    strips = grid_strips(grid, None)
    assert [s.text for s in strips] == [" +@", "@@ "]  # one data row per line
    every = grid_strips(np.arange(256, dtype=np.uint8).reshape(1, -1), None)[0].text
    assert every[0] == " " and every[-1] == "@" and set(every) == set(ASCII_RAMP)


def test_resampling_zooms_by_whole_factors_and_samples_down():
    assert fit_indices(4, 10).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert fit_indices(4, 100, max_zoom=3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert fit_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert resample(np.zeros((100, 3)), 10, 9).shape == (10, 9)


# ------------------------------------------------------------------------------------- panes
def activations(layer: str, cells: np.ndarray, step: int = 4200, lo: float = 0.0, scale: float = 0.01) -> Activations:
    rows, cols = cells.shape
    return Activations(step=step, layer=layer, rows=rows, cols=cols, lo=lo, scale=scale,
                       cells=cells.astype(np.uint8).tobytes(), units=rows)


def sample(name: str, images: np.ndarray, step: int = 4200) -> Sample:
    count, height, width = images.shape
    return Sample(step=step, name=name, count=count, height=height, width=width, lo=0.0, scale=1 / 255,
                  cells=images.astype(np.uint8).tobytes())


def filled_store() -> RunStore:
    rng = np.random.default_rng(0)
    enc = rng.integers(1, 256, size=(32, 32))  # units × samples
    enc[[3, 17, 30]] = 0  # three dead units
    dec = rng.integers(1, 256, size=(8, 32))
    digits = rng.integers(0, 256, size=(8, 8, 8))
    store = RunStore()
    store.ingest([activations("decoder.1", dec, step=4100), activations("encoder.1", enc)])
    store.ingest([sample("inputs", digits), sample("outputs", 255 - digits)])
    return store


class PanesApp(App):
    CSS = """
    ActivationsPane, ReconstructionsPane { border: round $primary; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.store = filled_store()

    def compose(self) -> ComposeResult:
        yield ActivationsPane()
        yield ReconstructionsPane()

    def on_mount(self) -> None:
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = "heat-a"


async def test_panes_draw_snapshots_and_switch_layers():
    app = PanesApp()
    async with app.run_test(size=(80, 24)) as pilot:
        acts, recon = app.query_one(ActivationsPane), app.query_one(ReconstructionsPane)
        heatmap = acts.query_one(Heatmap)
        await pilot.pause()
        assert EMPTY_TEXT in "".join(heatmap.render_line(y).text for y in range(heatmap.size.height))

        acts.refresh_from(app.store)
        recon.refresh_from(app.store)
        await pilot.pause()
        # first arrival order: decoder.1 came first
        assert acts.current_layer == "decoder.1"
        assert "decoder.1 (8 units × 32 samples) step 4,100" in str(acts.border_title)
        acts.next_layer()
        await pilot.pause()
        title = str(acts.border_title)
        assert "Activations ◂ 2/2 ▸ encoder.1 (32 units × 32 samples) step 4,200" in title
        assert acts.dead == DeadUnits(3, 32)
        lines = [heatmap.render_line(y).text for y in range(heatmap.size.height)]
        assert "▀" in lines[0]
        assert "0 … 2.55 · dead 3/32" in str(acts.border_subtitle)  # the legend: off the picture
        acts.next_layer()  # wraps around
        assert acts.current_layer == "decoder.1"
        acts.previous_layer()
        assert acts.current_layer == "encoder.1"

        # a dead unit is a column in the coldest colour from top to bottom
        lines = [heatmap.render_line(y) for y in range(heatmap.size.height)]
        picture = [s for s in lines if "▀" in s.text]
        x = next(i for i, ch in enumerate(picture[0].text) if ch == "▀")  # left edge of the picture
        zoom = (len(picture[0].text.strip()) // 32)
        dead_x = x + 3 * zoom
        cold = Ramp(COLD, MID, HOT).colors[0]
        for strip in picture:
            style = strip.crop(dead_x, dead_x + 1)._segments[0].style
            assert style.color == cold and style.bgcolor == cold

        rec_lines = [recon.render_line(y).text for y in range(recon.size.height)]
        assert rec_lines[0].startswith("in  ") and "▀" in rec_lines[0]
        assert any(line.startswith("out ") for line in rec_lines)
        assert "Reconstructions" in str(recon.border_title)
        # 8 images of 8 columns with a 1-column gap after the label
        assert len(rec_lines[0].rstrip()) == 4 + 8 * 8 + 7

        # nothing changed: no rebuild
        builds = heatmap.builds
        acts.refresh_from(app.store)
        heatmap.render_line(0)
        assert heatmap.builds == builds


async def test_theme_change_rebuilds_the_ramp():
    app = PanesApp()
    async with app.run_test(size=(80, 24)) as pilot:
        acts = app.query_one(ActivationsPane)
        heatmap = acts.query_one(Heatmap)
        acts.refresh_from(app.store)
        await pilot.pause()
        assert heatmap.ramp.colors[0].triplet.hex == COLD.lower()
        before = [heatmap.render_line(y) for y in range(heatmap.size.height)]
        app.theme = "heat-b"
        await pilot.pause()
        await pilot.pause()
        assert heatmap.ramp.colors[0].triplet.hex == "#ffffff"
        assert heatmap.ramp.colors[255].triplet.hex == "#000000"
        after = [heatmap.render_line(y) for y in range(heatmap.size.height)]
        styles_before = {seg.style.color for s in before for seg in s if seg.text.startswith("▀")}
        styles_after = {seg.style.color for s in after for seg in s if seg.text.startswith("▀")}
        assert styles_before and styles_after and not (styles_before & styles_after)


async def test_no_color_draws_the_ascii_ramp(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = PanesApp()
    assert app.no_color
    async with app.run_test(size=(80, 48)) as pilot:
        acts = app.query_one(ActivationsPane)
        recon = app.query_one(ReconstructionsPane)
        heatmap = acts.query_one(Heatmap)
        acts.refresh_from(app.store)
        recon.refresh_from(app.store)
        await pilot.pause()
        text = "".join(heatmap.render_line(y).text for y in range(heatmap.size.height))
        assert "▀" not in text and "@" in text
        rec = [recon.render_line(y).text for y in range(recon.size.height)]
        assert "▀" not in "".join(rec)
        # an 8×8 digit on 4 lines, as in colour (rows averaged in pairs): every row of outputs shows
        assert rec[0].startswith("in  ") and rec[5].startswith("out ") and rec[8][4:].strip()


def test_model_order_wins_over_arrival_order():
    store = filled_store()
    store.ingest([Hello(version=1, run_id="r", name="n", pid=1, host="h", started=0.0,
                        model=[LayerInfo(name="encoder.1", kind="ReLU"), LayerInfo(name="decoder.1", kind="ReLU")])])
    pane = ActivationsPane()
    pane.refresh_from(store)
    assert pane.layer_names == ["encoder.1", "decoder.1"] and pane.current_layer == "encoder.1"


@pytest.mark.parametrize("lo,scale,cells,dead", [
    (0.0, 0.01, [[0, 0], [0, 5]], 1),  # ReLU: cell 0 is exactly zero
    (-1.0, 2 / 255, [[127, 128], [0, 255]], 1),  # tanh: zero sits mid-range
])
def test_dead_units(lo, scale, cells, dead):
    """Without a health report, the layer's dead units are counted on its latest snapshot."""
    store = RunStore()
    store.ingest([activations("l", np.array(cells), lo=lo, scale=scale)])
    assert store.insights.dead_units("l") == DeadUnits(dead, len(cells))
