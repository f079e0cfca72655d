"""Layouts at 80×24 and 160×48, from a fixed journal (attach to a finished run: deterministic)."""

import pytest

from tests.journals import demo_messages, write_run
from tui.app import NeurotopApp
from tui.link import Link


def fixed_app(tmp_path) -> NeurotopApp:
    run_dir = write_run(tmp_path / "runs", demo_messages())
    return NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), name="fixed",
                       sample_system=False, read_only=True, show_ui_cost=False)


async def settle(pilot):
    app = pilot.app
    for _ in range(200):
        if app.store.finished and app.store.step == 600 and app.store.output_total == 2:
            break
        await pilot.pause(0.05)
    app.repaint()
    app.repaint_chart()
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_layout(snap_compare, tmp_path, size):
    assert snap_compare(fixed_app(tmp_path), terminal_size=size, run_before=settle)
