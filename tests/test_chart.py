"""The loss chart as a user reads it (issue 11, defects 4 and 10): a metric that is not a loss on
a panel of its own, a y range the start-up spike does not squash, round ticks, a legend off the
data. Each test attaches to a finished run written by hand and reads what the chart drew."""

from __future__ import annotations

import math
import re

import pytest

from neurotop.trainer.protocol import Metric
from neurotop.tui.widgets.loss_chart import LossChart, nice_ticks
from tests.journals import T0
from tests.test_panes import attached, metrics_only, screen_text, settled

NUMBER = re.compile(r"^-?\d+(?:\.\d+)?k?$")


def chart_lines(app) -> list[str]:
    return app.query_one(LossChart).render().plain.splitlines()


def panels(lines: list[str]) -> list[list[str]]:
    """The chart's lines cut into panels, each ending at its frame's bottom (``└``)."""
    out, current = [], []
    for line in lines:
        current.append(line)
        if "└" in line:
            out.append(current)
            current = []
    return out


def y_labels(panel: list[str]) -> list[float]:
    return [float(line.split("┤")[0]) for line in panel if "┤" in line and line.split("┤")[0].strip()]


def x_labels(lines: list[str]) -> list[float]:
    """The numbers under the last frame (the step axis)."""
    last = max(i for i, line in enumerate(lines) if "└" in line)
    words = lines[last + 1].split()
    assert words and all(NUMBER.match(w) for w in words), lines[last + 1]
    return [float(w[:-1]) * 1000 if w.endswith("k") else float(w) for w in words]


def with_accuracy() -> list:
    msgs = metrics_only()
    accuracy = [Metric(step=s, t=T0 + s / 100, values={"accuracy": 1 - math.exp(-s / 100)}) for s in range(10, 601, 10)]
    return msgs[:-1] + accuracy + msgs[-1:]


def with_spike() -> list:
    msgs = metrics_only()
    for m in msgs:
        if isinstance(m, Metric) and m.step < 10 and "loss" in m.values:
            m.values["loss"] = 5.0
    return msgs


async def test_a_metric_that_is_not_a_loss_gets_a_panel_of_its_own(tmp_path):
    app = attached(tmp_path, with_accuracy())
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        loss, accuracy = panels(chart_lines(app))
        assert max(y_labels(loss)) < 0.5  # the losses' axis: accuracy (up to 1) is not on it
        assert max(y_labels(accuracy)) >= 0.7 and any("accuracy" in line for line in accuracy)
        assert "accuracy" in str(app.query_one(LossChart).border_title)


async def test_the_start_up_spike_is_left_out_of_the_y_range_until_o(tmp_path):
    app = attached(tmp_path, with_spike())
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        chart = app.query_one(LossChart)
        assert max(y_labels(chart_lines(app))) < 0.5  # the curve after the spike fills the height
        assert "spike clipped: o" in str(chart.border_subtitle)
        await pilot.click("#loss")
        await pilot.press("o")
        assert chart.show_outliers and max(y_labels(chart_lines(app))) >= 4.0
        assert "spike clipped" not in str(chart.border_subtitle)
        await pilot.press("o")
        assert max(y_labels(chart_lines(app))) < 0.5


@pytest.mark.parametrize("steps", [600, 10_850])
async def test_ticks_are_round_numbers(tmp_path, steps):
    app = attached(tmp_path, metrics_only(steps))
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        lines = chart_lines(app)
        xs = x_labels(lines)
        assert len(xs) >= 3
        for x in xs:  # 100, 200 … or 2k, 4k …: one or two significant digits
            digits = f"{x:g}".rstrip("0").replace(".", "").lstrip("0")
            assert len(digits) <= 2, xs
        ys = y_labels(lines)
        steps_between = {round(b - a, 9) for a, b in zip(ys, ys[1:])}
        assert len(steps_between) == 1, ys  # evenly spaced, round values
        assert all(len(f"{y:g}".replace(".", "").strip("0")) <= 2 for y in ys), ys


async def test_the_legend_is_in_the_title_not_on_the_data(tmp_path):
    app = attached(tmp_path, metrics_only())
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        plot = "\n".join(chart_lines(app))
        assert "loss" not in plot and "val_loss" not in plot
        title = screen_text(app)[1]  # the chart's top border, as drawn
        assert "Loss  ━ loss  ━ val_loss" in title


def test_nice_ticks_are_one_two_or_five_apart():
    assert nice_ticks(16, 600, 5) == [200, 400, 600]
    assert nice_ticks(256, 10_850, 6) == [2000, 4000, 6000, 8000, 10000]
    assert nice_ticks(0.018, 0.219, 5) == [0.05, 0.1, 0.15, 0.2]


async def test_a_log_axis_has_round_ticks_too(tmp_path):
    app = attached(tmp_path, with_spike())
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        await pilot.click("#loss")
        await pilot.press("l", "o")  # log y, every point: 5.0 down to ~0.02
        ys = y_labels(chart_lines(app))
        assert len(ys) >= 2 and all(round(y / 10 ** math.floor(math.log10(y)), 9) in (1, 2, 5) for y in ys), ys


async def test_a_run_without_a_loss_gives_each_metric_its_own_scale(tmp_path):
    msgs = [m for m in metrics_only() if not isinstance(m, Metric)]
    msgs[1:1] = [Metric(step=s, t=T0 + s, values={"accuracy": 1 - math.exp(-s / 100), "lr": 1e-3 * 0.99 ** (s / 10)})
                 for s in range(1, 601)]
    app = attached(tmp_path, msgs)
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        accuracy, lr = panels(chart_lines(app))
        assert max(y_labels(accuracy)) >= 0.7 and max(y_labels(lr)) <= 0.001
        assert abs(len(accuracy) - len(lr)) <= 1  # they share the height
