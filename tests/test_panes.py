"""The dashboard's panes driven as a user meets them (issue 11, defects 4, 8, 9 and the output pane):
the app attached to a finished run written by hand, so every figure on screen is known."""

from __future__ import annotations

import pytest

from neurotop.trainer import journal
from neurotop.trainer.protocol import Activations, Event, Hello, LayerInfo, Metric, ParamSpec, Status
from neurotop.tui.app import NeurotopApp
from neurotop.tui.link import Link, OutputLines
from neurotop.tui.system import HostSample, ProcSample, SystemSample
from neurotop.tui.widgets.activations import ActivationsPane
from neurotop.tui.widgets.log_pane import KEEP, LogPane
from neurotop.tui.widgets.loss_chart import LossChart, panels_for
from neurotop.tui.widgets.reconstructions import ReconstructionsPane
from tests.conftest import until
from tests.journals import T0, demo_messages, write_run


def attached(tmp_path, msgs, output: str | None = None, **kwargs) -> NeurotopApp:
    run_dir = write_run(tmp_path / "runs", msgs)
    if output is not None:
        (run_dir / journal.OUTPUT).write_text(output)
    options = dict(name="fixed", sample_system=False, read_only=True, show_ui_cost=False, pictures_hz=8.0)
    options.update(kwargs)
    return NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify), **options)


def metrics_only(steps: int = 600) -> list:
    """What the README's five SDK lines send: a hello and losses, no probes."""
    return [m for m in demo_messages(steps) if type(m).__name__ not in ("Activations", "Sample")]


async def settled(pilot, lines: int = 2) -> None:
    app = pilot.app
    await until(pilot, lambda: app.store.run.finished and app.store.output.total >= lines)

    def painted() -> bool:
        """A pane that appears moves the others: paint until each shows what the store holds at
        its settled size."""
        app.dashboard.repaint_text()
        app.dashboard.repaint_pictures()
        chart, acts = app.query_one(LossChart), app.query_one(ActivationsPane)
        return (acts.display == bool(app.store.insights.activations.items) and len(app.query_one(LogPane).lines) >= min(lines, KEEP)
                and chart.panels == panels_for(list(app.store.metrics.series), chart.size.height)[0])

    await until(pilot, painted)
    await pilot.pause()


def screen_text(app) -> list[str]:
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


# ------------------------------------------------------------------------------- defect 4
async def test_a_run_without_probes_gives_the_picture_panes_room_to_the_chart(tmp_path):
    app = attached(tmp_path, metrics_only())
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        acts, recon, chart = app.query_one(ActivationsPane), app.query_one(ReconstructionsPane), app.query_one(LossChart)
        assert not acts.display and not recon.display
        assert not any("waiting for the first snapshot" in line for line in screen_text(app))
        assert chart.outer_size.height == app.query_one("#left").size.height  # the whole column


async def test_a_picture_pane_appears_when_its_first_snapshot_arrives(tmp_path):
    app = attached(tmp_path, metrics_only())
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        acts = app.query_one(ActivationsPane)
        assert not acts.display
        cells = bytes(range(64))
        app.store.ingest([Activations(step=600, layer="enc.relu", rows=8, cols=8, lo=0.0, scale=0.01, cells=cells)])
        app.dashboard.repaint_pictures()
        await until(pilot, lambda: acts.display and acts.outer_size.height > 0)
        assert "enc.relu" in str(acts.border_title)


# ------------------------------------------------------------------------ defect 8 (NO_COLOR)
async def test_no_color_reconstructions_show_every_row_of_the_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = attached(tmp_path, demo_messages())
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot)
        recon = app.query_one(ReconstructionsPane)
        rows = [recon.render_line(y).text for y in range(recon.size.height)]
        out = next(i for i, row in enumerate(rows) if row.startswith("out"))
        drawn = [row for row in rows[out:] if row[4:].strip()]
        # the digit has bars in rows 1 and 6 and columns 2 and 5: 8 rows drawn on 4 lines
        assert len(drawn) == 4 and all("=" in row for row in drawn)


# ------------------------------------------------------------------------------ defect 9, 80×24
def system_sample() -> SystemSample:
    return SystemSample(t=T0, host=HostSample(cpu_pct=31.0, cpu_count=16, ram_used=int(1.7 * 2**30),
                                              ram_total=24 * 2**30),
                        gpus=(), gpu_status="no NVIDIA GPU (NVML not found)",
                        proc=ProcSample(pid=1, alive=True, cpu_pct=96.0, rss=int(1.1 * 2**30), nprocs=3),
                        ui=ProcSample(pid=2, alive=True, cpu_pct=4.0, rss=180 * 2**20, nprocs=1))


async def test_80x24_shows_every_figure_with_nothing_wrapped_mid_word(tmp_path):
    app = attached(tmp_path, demo_messages(), show_ui_cost=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        app.store.ingest([system_sample()])
        app.store.ingest([Activations(step=600, layer="dec.relu", rows=16, cols=8, lo=0.0, scale=0.01,
                                      cells=bytes(128), units=16)])  # a second layer: the selector shows

        def shown() -> str:
            app.dashboard.repaint_text()
            app.dashboard.repaint_pictures()
            return "\n".join(screen_text(app))

        await until(pilot, lambda: "procs" in shown() and "◂ 1/2 ▸" in shown())  # both painted
        screen = shown()
        header = screen_text(app)[0]
        assert "00:00:06" in header and "ui " in header and "step 600" in header  # elapsed, ui cost
        assert "RAM 1.7 GB/24 GB" in screen and "procs 3" in screen
        assert app.query_one(ReconstructionsPane).display and app.query_one(ReconstructionsPane).size.height >= 4
        assert "◂ 1/2 ▸" in str(app.query_one(ActivationsPane).border_title)
        assert "◂ 1/2 ▸" in screen


async def test_a_refused_value_is_shown_on_its_own_line(tmp_path):
    from neurotop.trainer.protocol import ParamChange

    msgs = demo_messages() + [ParamChange(step=600, t=T0 + 7, name="weight_decay", old=0.0, new=-5.0, ok=False,
                                          reason="below the minimum 0", source="ui")]
    app = attached(tmp_path, msgs)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        screen = screen_text(app)
        at = next(i for i, line in enumerate(screen) if "refused -5: below" in line)
        assert "│     minimum 0" in screen[at + 1]  # the rest of the sentence, under it, indented


# ------------------------------------------------------------------------------- output pane
def numbered(count: int, long_word: str = "") -> str:
    lines = [f"line {i:04d} of the run's output" for i in range(count)]
    if long_word:
        lines.append("a long line " + "with many words " * 20 + long_word)
    return "\n".join(lines) + "\n"


async def reading_output(pilot, lines: int = 300) -> LogPane:
    """The output pane with focus (a click on it, as a user gives it), once the output is in."""
    await settled(pilot, lines)
    await pilot.click("#log")
    return pilot.app.query_one(LogPane)


def log_rows(app) -> list[str]:
    log = app.query_one(LogPane)
    return [log.render_line(y).text for y in range(log.size.height)]


async def test_output_pane_pages_back_and_returns_to_the_newest(tmp_path):
    app = attached(tmp_path, demo_messages(), output=numbered(300))
    async with app.run_test(size=(120, 40)) as pilot:
        log = await reading_output(pilot)
        assert log.has_focus and any("line 0299" in row for row in log_rows(app))
        await pilot.press("pageup")
        rows = log_rows(app)
        assert not any("line 0299" in row for row in rows) and any("line 0270" in row for row in rows)
        assert "newer" in str(log.border_subtitle)
        await pilot.press("pagedown")
        assert any("line 0299" in row for row in log_rows(app))
        await pilot.press("home")
        assert "line 0000" in log_rows(app)[0]
        await pilot.press("end")
        assert "line 0299" in log_rows(app)[-1]


async def test_output_pane_search_finds_older_lines_and_n_goes_on(tmp_path):
    app = attached(tmp_path, demo_messages(), output=numbered(300))
    async with app.run_test(size=(120, 40)) as pilot:
        log = await reading_output(pilot)
        await pilot.press("slash", *"line 004", "enter")  # matches 0040 … 0049, the newest first
        assert log.query == "line 004" and log.match is not None
        assert "line 0049" in log.lines[log.match]
        assert any("line 0049" in row for row in log_rows(app))
        await pilot.press("n")
        assert "line 0048" in log.lines[log.match]
        await pilot.press("N", "N")  # back to the newest match, and no newer one: it stays
        assert "line 0049" in log.lines[log.match]
        await pilot.press("escape")
        assert log.query == "" and log.match is None
        await pilot.press("n")  # no search: n is the note key again (this ended run says it takes none)
        await until(pilot, lambda: any(str(n.message).startswith("Note: ") for n in app._notifications))


async def test_output_pane_wraps_a_long_line_instead_of_cutting_it(tmp_path):
    app = attached(tmp_path, demo_messages(), output=numbered(5, long_word="THE-END-OF-IT"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot, 6)
        rows = log_rows(app)
        assert any("THE-END-OF-IT" in row for row in rows)
        assert all(not row.rstrip() or len(row) <= app.query_one(LogPane).size.width for row in rows)


async def test_output_pane_keeps_its_memory_bounded(tmp_path):
    app = attached(tmp_path, demo_messages(), output=numbered(KEEP + 500))
    async with app.run_test(size=(120, 40)) as pilot:
        await settled(pilot, KEEP + 500)
        log = app.query_one(LogPane)
        assert len(log.lines) == KEEP and log.lines[-1].startswith(f"line {KEEP + 499:04d}")


# ------------------------------------------------------------------------- the one sanitiser
async def test_strings_from_a_run_reach_the_screen_without_escapes(tmp_path):
    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m"
    msgs = [Hello(version=1, run_id="r", name=f"run{evil}", pid=1, host="h", started=T0,
                  model=[LayerInfo(name=f"enc{evil}", kind="ReLU")],
                  params=[ParamSpec(name=f"lr{evil}", kind="float", value=0.1, default=0.1, help=f"help{evil}")])]
    msgs += [Metric(step=s, t=T0 + s, values={"loss": 1 / s, f"acc{evil}": s / 100}) for s in range(1, 50)]
    msgs += [Activations(step=49, layer=f"enc{evil}", rows=4, cols=4, lo=0.0, scale=0.1, cells=bytes(16)),
             Event(step=49, t=T0 + 49, kind="warning", text=f"spike{evil}", source="guard"),
             Status(step=49, t=T0 + 50, state="failed", exit_code=1, detail=f"boom{evil}")]
    app = attached(tmp_path, msgs, output=f"printed{evil}\n")
    async with app.run_test(size=(160, 48)) as pilot:
        await settled(pilot, 1)
        shown = "\n".join(screen_text(app))
        titles = [str(w.border_title) + str(w.border_subtitle) for w in app.screen.query("*")]
        for text in [shown, *titles]:
            assert not any(ch in text for ch in "\x1b\x07\x9b"), repr(text)
        assert "run31m" in shown and "spike31m" in shown  # the escapes go whole (OSC, CSI), the text stays


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"])
async def test_header_is_one_line_with_state_step_and_elapsed_at_every_size(tmp_path, size):
    app = attached(tmp_path, demo_messages(), show_ui_cost=True)
    async with app.run_test(size=size) as pilot:
        await settled(pilot)
        app.store.ingest([system_sample()])  # the UI's own cost comes with the system sample
        app.dashboard.repaint_text()
        await until(pilot, lambda: "ui " in screen_text(app)[0])
        header = screen_text(app)[0]
        for figure in ("● finished", "step 600", "00:00:06", "mon 0.0%", "ui "):
            assert figure in header, (figure, header)


# ------------------------------------------------------------------------- pathways, 80×24
async def test_the_compare_picker_shows_each_run_whole_at_80x24(runs):
    from tests.test_pathways_ui import attached_app, insight_messages, open_pathways
    from neurotop.tui.screens.pathways import RunPicker

    mine = write_run(runs, insight_messages(name="mine"), name="mine")
    other = write_run(runs, insight_messages(steps=300, name="autoencoder-digits"), name="autoencoder-digits")
    app = attached_app(mine)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_pathways(pilot, app)
        await pilot.press("o")
        await until(pilot, lambda: any("autoencoder-digits" in line for line in screen_text(app)))
        assert isinstance(app.screen, RunPicker)
        row = next(line for line in screen_text(app) if "autoencoder-digits" in line)
        assert other.name[:20] in row  # the id's unique prefix, on the same line as the name


async def test_the_activation_history_title_keeps_its_layer_selector(runs):
    from tests.test_pathways_ui import attached_app, insight_messages, open_pathways
    from neurotop.tui.widgets.health import UnitHistoryPane

    app = attached_app(write_run(runs, insight_messages()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_pathways(pilot, app)
        await until(pilot, lambda: "◂ 1/2 ▸" in "\n".join(screen_text(app)))
        assert "◂ 1/2 ▸ enc.relu" in str(screen.query_one(UnitHistoryPane).border_title)


async def test_new_output_does_not_move_what_you_read_back(tmp_path):
    app = attached(tmp_path, demo_messages(), output=numbered(300))
    async with app.run_test(size=(120, 40)) as pilot:
        log = await reading_output(pilot)
        await pilot.press("pageup")
        before = log_rows(app)
        app.store.ingest([OutputLines([f"fresh {i}" for i in range(5)])])
        app.dashboard.repaint_pictures()
        await until(pilot, lambda: len(log.lines) == 305)
        assert log_rows(app) == before and "↓" in str(log.border_subtitle)
        await pilot.press("end")
        assert log_rows(app)[-1].startswith("fresh 4")
