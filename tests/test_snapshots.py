"""Layouts at 80×24 and 160×48, from a fixed journal (attach to a finished run: deterministic)."""

import pytest

from tests.journals import demo_messages, write_run
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link


def fixed_app(tmp_path) -> NeurotopApp:
    run_dir = write_run(tmp_path / "runs", demo_messages())
    return NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), name="fixed",
                       sample_system=False, read_only=True, show_ui_cost=False)


async def settle(pilot):
    app = pilot.app
    for _ in range(200):
        if app.store.run.finished and app.store.run.step == 600 and app.store.output.total == 2:
            break
        await pilot.pause(0.05)
    app.dashboard.repaint_text()
    await pilot.pause(0.2)  # the text panes settle the layout first
    app.dashboard.repaint_pictures()
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_layout(snap_compare, tmp_path, size):
    assert snap_compare(fixed_app(tmp_path), terminal_size=size, run_before=settle)


async def test_zoom_pan_follow_and_smoothing_keys(tmp_path):
    from neurotop.tui.widgets.loss_chart import LossChart

    app = fixed_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        chart = app.query_one(LossChart)
        assert chart.window(app.store) == (None, None) and "whole run" in chart.border_subtitle
        await pilot.press("z", "z")
        span = int((600 - 1) * 0.25)  # steps 1..600, halved twice
        assert chart.span == span
        assert chart.window(app.store) == (600 - span, 600) and f"{span} steps · following" in chart.border_subtitle
        await pilot.press("left")
        lo, hi = chart.window(app.store)
        assert hi < 600 and hi - lo == span and "panned" in chart.border_subtitle
        await pilot.press("f")
        assert chart.window(app.store) == (600 - span, 600)
        await pilot.press("Z", "Z", "Z")
        assert chart.span is None
        before = chart.smoothing
        await pilot.press("s")
        assert chart.smoothing != before and f"smooth {chart.smoothing:g}" in chart.border_subtitle
        await pilot.press("l")
        assert chart.log_y and "log y" in chart.border_subtitle
