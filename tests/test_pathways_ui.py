"""The pathways screen (v), driven by Pilot: against journals written by hand (exactly known
contents), and against the scripted child for a note typed live."""

import numpy as np

from tests.conftest import scripted
from tests.journals import T0, demo_messages, write_run
from tests.conftest import until
from neurotop.trainer import journal
from neurotop.trainer.protocol import Event, Gradients, Health, Latent, LayerInfo, Signal
from neurotop.tui.app import NeurotopApp
from neurotop.tui.cli import main as cli_main
from neurotop.tui.link import Link
from neurotop.tui.screens.pathways import PathwaysScreen, RunPicker
from neurotop.tui.widgets.gradients import GradientsPane
from neurotop.tui.widgets.health import HealthPane, UnitHistoryPane
from neurotop.tui.widgets.latent import LatentPlot
from neurotop.tui.widgets.loss_chart import LossChart
from neurotop.tui.widgets.notes import NotesPane
from neurotop.tui.widgets.pathway import PathwayPane

LAYERS = ["enc.relu", "dec.relu"]


def insight_messages(steps=600, every=50, dying_from=300, loss_scale=1.0, name="fixed"):
    """The hand-written demo journal plus health (enc.relu dies from ``dying_from``), gradients,
    a latent projection with labels and the signal on each layer."""
    msgs = demo_messages(steps, name=name)
    hello = msgs[0]
    hello.model = [LayerInfo(name="enc.lin", kind="Linear", shape=[16, 8], params=144),
                   LayerInfo(name="enc.relu", kind="ReLU"), LayerInfo(name="dec.lin", kind="Linear", shape=[8, 16]),
                   LayerInfo(name="dec.relu", kind="ReLU")]
    for m in msgs[1:]:
        if hasattr(m, "values") and "loss" in m.values:
            m.values = {"loss": m.values["loss"] * loss_scale}
    end = msgs.pop()  # the end record stays last
    for step in range(every, steps + 1, every):
        for layer in LAYERS:
            dead = 12 if layer == "enc.relu" and step >= dying_from else 1
            means = bytes((u * 16 + step // every) % 256 if u >= dead else 0 for u in range(16))
            spreads = bytes((255 - u * 16) if u >= dead else 0 for u in range(16))
            msgs.append(Health(step=step, layer=layer, units=16, dead=dead, saturated=2, mean=0.3, std=0.2,
                               signal=0.3, kind="rectifier", rows=16, means=means, mean_lo=0.0, mean_scale=0.01,
                               spreads=spreads, spread_lo=0.0, spread_scale=0.001))
        msgs.append(Gradients(step=step, layers=["enc.lin", "dec.lin"], grad_norm=[1e-4 * step, 1e-2],
                              update_ratio=[1e-3, 1e-4]))
        msgs.append(Signal(step=step, layers=["enc.lin", "enc.relu", "dec.lin", "dec.relu"],
                           mean_abs=[1.0, 0.3, 2.0, None]))
    n = 200
    xs = (np.arange(n) * 300 % 65536).astype("<u2").tobytes()
    ys = (np.arange(n)[::-1] * 300 % 65536).astype("<u2").tobytes()
    msgs.append(Latent(step=steps, points=n, x=xs, y=ys, lo=[-1.0, -2.0], scale=[1e-4, 1e-4],
                       explained=[0.4, 0.2], labels=[i % 10 for i in range(n)], dims=8, name="encode"))
    msgs.append(Event(step=steps - 10, t=T0 + steps / 100, kind="note", text="enc.relu is going dark", source="ui"))
    msgs.append(end)
    return msgs


def attached_app(run_dir, **kw):
    return NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), name="fixed", sample_system=False,
                       read_only=True, **kw)


async def open_pathways(pilot, app, layer="enc.relu"):
    await until(pilot, lambda: app.store.run.finished and layer in app.store.insights.health.layers)
    await pilot.press("v")
    await until(pilot, lambda: isinstance(app.screen, PathwaysScreen))
    screen = app.screen
    screen.repaint_all()
    await pilot.pause()  # the repaint is synchronous: let the app take its messages
    return screen


async def test_pathways_open_switch_layers_sort_and_go_back(runs):
    run_dir = write_run(runs, insight_messages())
    app = attached_app(run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_pathways(pilot, app)
        health = screen.query_one(HealthPane)
        rows = health.timeline.rows
        assert [r.label for r in rows] == LAYERS  # model order, from the hello
        assert rows[0].alert and not rows[1].alert and rows[0].right == "75% dead"
        assert "dead: enc.relu" in health.border_title
        assert any(m.kind == "dead" and m.step == 300 for m in app.store.metrics.markers)
        # the strip shows the layer dying: cold before step 300, hot after
        assert rows[0].values[0] == 1 / 16 and rows[0].values[-1] == 12 / 16
        # activation history: first layer, switch with ] and [, sort by variance with s
        history = screen.query_one(UnitHistoryPane)
        assert history.current_layer == "enc.relu" and history.sort == "mean"
        await pilot.press("right_square_bracket")
        assert history.current_layer == "dec.relu" and "dec.relu" in str(history.border_title)
        await pilot.press("left_square_bracket")
        assert history.current_layer == "enc.relu"
        await pilot.press("s")
        assert history.sort == "variance"
        spreads = app.store.insights.health.layers["enc.relu"].unit_spreads
        assert list(history.unit_order) == list(np.argsort(-spreads, kind="stable"))
        assert history.heatmap.grid.shape == (16, 12)  # units × snapshots
        # gradient flow, latent, pathway, notes
        grads = screen.query_one(GradientsPane)
        assert [r.label for r in grads.timeline.rows] == ["enc.lin", "dec.lin"]
        await pilot.press("u")
        assert "‖Δw‖/‖w‖" in str(grads.border_title)
        latent = screen.query_one(LatentPlot)
        assert latent.shown is not None and "200 points" in str(latent.border_title)
        pathway = screen.query_one(PathwayPane)
        assert any("enc.relu" in line and "dead 12/16" in line for line in pathway.lines)
        assert any("dec.lin" in line and "2" in line for line in pathway.lines)
        notes = screen.query_one(NotesPane)
        texts = [entry[3] for entry in notes.entries]
        assert "enc.relu is going dark" in texts and any(t.startswith("lr ") for t in texts)
        await pilot.press("m")  # the health strip coloured by saturation instead
        assert health.timeline.rows[0].right == "12% sat"
        app.save_screenshot(str(runs / "pathways-80x24.svg"))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PathwaysScreen))
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, PathwaysScreen))
        await pilot.press("v")
        await until(pilot, lambda: not isinstance(app.screen, PathwaysScreen))


async def test_a_typed_note_shows_in_the_notes_pane(runs):
    run_dir = journal.create_run_dir(runs, "scripted")
    app = NeurotopApp(lambda store, notify: Link.spawn(scripted("--rate", "300"), run_dir, store, notify),
                      name="scripted", sample_system=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.store.run.hello is not None and app.store.run.step > 5)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, PathwaysScreen))
        pathways = app.screen
        await pilot.press("n")
        await until(pilot, lambda: type(app.screen).__name__ == "PromptScreen")
        await pilot.press(*"layer two looks dead", "enter")
        notes = pathways.query_one(NotesPane)
        await until(pilot, lambda: any(e[3] == "layer two looks dead" for e in notes.entries))
        assert "layer two looks dead" in str(notes.render()) and notes.border_title == "Notes (1)"
        assert app.screen is pathways
        app.link.stop()
    assert journal.RunInfo.load(run_dir).notes == 1


async def test_compare_overlays_a_second_run_on_the_chart_and_the_strips(runs):
    mine = write_run(runs, insight_messages(name="mine"), name="mine")
    other = write_run(runs, insight_messages(steps=400, dying_from=10_000, loss_scale=2.0, name="other"),
                      name="other")
    app = attached_app(mine, compare=other)
    async with app.run_test(size=(120, 40)) as pilot:
        compared = app.compare.store
        await until(pilot, lambda: compared.run.finished and "enc.relu" in compared.insights.health.layers)
        chart = app.query_one(LossChart)
        assert chart.compare is compared and compared.run.name == "other"
        await until(pilot, lambda: "≈ other" in str(chart.border_title))  # the other run's loss, drawn
        screen = await open_pathways(pilot, app)
        rows = screen.query_one(HealthPane).timeline.rows
        labels = [r.label for r in rows]
        assert labels[:2] == LAYERS and labels[2].startswith("≈ compared: other") and labels[3:] == LAYERS
        assert all(r.dim for r in rows[3:]) and not any(r.alert for r in rows[3:])
        assert rows[3].steps[-1] == 400 and rows[0].steps[-1] == 600  # one step axis for both
        grad_rows = screen.query_one(GradientsPane).timeline.rows
        assert [r.label for r in grad_rows][3:] == ["enc.lin", "dec.lin"]


async def test_the_compare_picker_attaches_and_detaches(runs):
    mine = write_run(runs, insight_messages(name="mine"), name="mine")
    write_run(runs, insight_messages(steps=300, name="other"), name="other")
    app = attached_app(mine)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_pathways(pilot, app)
        assert app.compare.store is None
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RunPicker))
        assert len(app.screen.runs) == 1  # the run on screen is not offered
        await pilot.press("enter")  # the highlighted (only) run
        await until(pilot, lambda: app.compare.store is not None and app.compare.store.run.finished)
        assert app.compare.store.run.name == "other"
        await until(pilot, lambda: any(r.dim for r in app.screen.query_one(HealthPane).timeline.rows))  # under ours
        assert isinstance(app.screen, PathwaysScreen)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RunPicker))
        await pilot.press("enter")  # "(stop comparing)" comes first
        await until(pilot, lambda: app.compare.store is None)
        await until(pilot, lambda: not any(r.dim for r in app.screen.query_one(HealthPane).timeline.rows))


async def test_pathways_wait_politely_for_a_run_without_insights(runs):
    run_dir = write_run(runs, demo_messages(100))
    app = attached_app(run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.store.run.finished)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, PathwaysScreen))
        app.screen.repaint_all()
        await pilot.press("right_square_bracket", "s", "m", "u")
        assert app.screen.query_one(HealthPane).timeline.rows == []
        assert app.screen.query_one(LatentPlot).shown is None
        assert app.is_running


def test_compare_with_an_unknown_run_is_refused(runs, capsys):
    write_run(runs, demo_messages(10))
    assert cli_main(["attach", "--compare", "no-such-run"]) == 2
    assert "--compare" in capsys.readouterr().err


def test_step_columns_line_two_runs_up_by_step():
    from neurotop.tui.widgets.health import step_columns

    steps, values = np.array([100, 200, 300]), np.array([0.1, 0.2, 0.3])
    short = step_columns(steps, values, 0, 600, 12)  # a run that stopped at 300, drawn on 0..600
    assert np.isnan(short[0]) and short[1:7].tolist() == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]
    assert np.isnan(short[7:]).all()
    assert step_columns(steps, values, 0, 300, 6)[1:].tolist() == [0.1, 0.1, 0.2, 0.2, 0.3]


async def test_hostile_insight_messages_are_drawn_without_harm(runs):
    """Messages that claim more than they carry, or odd values, still draw (bounded) and never
    take the app down."""
    msgs = demo_messages(50)
    end = msgs.pop()
    msgs += [
        Health(step=10, layer="[bold]x", units=0, dead=5, saturated=-3, mean=1e300, std=0.0, rows=10**9,
               means=b"\x01\x02", spreads=b""),
        Health(step=20, layer="[bold]x", units=-4, dead=0, saturated=0, mean=0.0, std=0.0, rows=-1),
        Gradients(step=10, layers=[f"l{i}" for i in range(500)], grad_norm=[None, 0.0, 1e308], update_ratio=[]),
        Latent(step=10, points=10**12, x=b"\x00\x01" * 3, y=b"\xff", lo=[], scale=[0.0], labels=[2**70, -1]),
        Latent(step=11, points=3, x=b"\x00\x01" * 3, y=b"\x00\x02" * 3, lo=[0.0, 0.0], scale=[1.0, 1.0],
               labels=[-1, 10**6, 3], name="[red]z"),
        Signal(step=10, layers=["enc.relu"] * 3, mean_abs=[None, -1.0, 1e300]),
        end,
    ]
    app = attached_app(write_run(runs, msgs))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_pathways(pilot, app, layer="[bold]x")
        await pilot.press("right_square_bracket", "s", "s", "m", "m", "m", "u")
        screen.repaint_all()
        await pilot.pause()
        assert app.is_running and len(app.store.insights.gradients.value.layers) <= 128
        assert screen.query_one(LatentPlot).shown.points == 3
