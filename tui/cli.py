"""`neurotop` command line: demo (what no command runs), run, attach, ls."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable

from neurotop.trainer import journal
from neurotop.trainer.demo import options as demo_options
from neurotop.tui.link import Link, attach_command, python_argv
from neurotop.tui.format import duration
from neurotop.tui.parse import OutputParser
from neurotop.tui.store import RunStore

DEMO_MODULE = "neurotop.trainer.demo"


def build_parser() -> argparse.ArgumentParser:
    def runs_option(default):
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--runs-dir", default=default, help="where runs live (default $NEUROTOP_RUNS, else "
                            "$XDG_STATE_HOME/neurotop/runs, i.e. ~/.local/state/neurotop/runs)")
        return parser

    # before or after the command; SUPPRESS: a command's default never hides a value given before it
    runs = runs_option(argparse.SUPPRESS)
    ui = argparse.ArgumentParser(add_help=False, parents=[runs])  # only for the commands that open the UI
    ui.add_argument("--refresh", type=float, default=4.0,
                    help="repaints per second of the text panes (default 4)")
    ui.add_argument("--pictures", type=float, default=0.5,
                    help="repaints per second of the chart, heatmaps and log (default 0.5: they "
                         "rewrite whole panes, the main cost in bytes over SSH)")
    ui.add_argument("--compare", metavar="RUN",
                    help="overlay another run (id, unique part of it, name or directory): its loss on the chart, "
                         "its neuron health and gradients in the pathways view (v), aligned by step")

    ap = argparse.ArgumentParser(prog="neurotop", parents=[runs_option(None)], description="A top for neural-network "
                                 "training. With no command, neurotop runs the demo (as `neurotop demo`).")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", parents=[ui], help="the built-in autoencoder on the digits, live, until stopped",
                          description="Train the built-in autoencoder on scikit-learn's digits under the live "
                                      "TUI. It runs until you stop it (q, then s) unless --epochs or --steps says.")
    demo.add_argument("--headless", action="store_true", help="no UI: run and journal only")
    demo_options.add_arguments(demo.add_argument_group("the demo's options"))
    run = sub.add_parser("run", parents=[ui], help="supervise any command: neurotop run -- CMD ...",
                         description="Supervise a training command. With the SDK (from neurotop import Monitor) "
                                     "it gets every pane and control; without it, neurotop reads metrics from "
                                     "its output, and pause (SIGSTOP), stop and notes work.")
    run.add_argument("--name", help="the run's name (default: the script's or module's name)")
    run.add_argument("--headless", action="store_true", help="no UI: run and journal only")
    run.add_argument("--no-parse", action="store_true", help="do not read metrics from the command's output")
    run.add_argument("--metric-regex", help="read metrics with this regex: named groups are metric names "
                                           "(or name/value pairs), a group named step is the step")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    attach = sub.add_parser("attach", parents=[ui], help="reopen a live or finished run (default: the newest)")
    attach.add_argument("run", nargs="?", help="run id, a unique start or part of it, name, or directory")
    sub.add_parser("ls", parents=[runs], help="list runs, newest first")
    return ap


def main(argv: list[str] | None = None) -> int:
    """The console script. Output cut short by a closed pipe (``neurotop ls | head``) ends quietly."""
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        null = os.open(os.devnull, os.O_WRONLY)  # so the flush at exit does not fail again
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
        return 1


def _main(argv: list[str]) -> int:
    ap = build_parser()
    args, extra = ap.parse_known_args(with_command(argv))
    if extra and args.command != "run":
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    root = journal.runs_root(args.runs_dir)
    if args.command == "ls":
        return cmd_ls(root)
    try:
        args.compare = journal.find_run(root, args.compare) if args.compare else None
    except LookupError as err:
        print(f"neurotop: --compare: {err}", file=sys.stderr)
        return 2
    if args.command == "attach":
        return cmd_attach(root, args)
    if args.command == "run":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else list(args.cmd)
        if extra:
            print(f"neurotop run: unknown option(s) {' '.join(extra)}; the command goes after --", file=sys.stderr)
            return 2
        if not cmd:
            print("neurotop run: give the command after --, e.g. neurotop run -- python train.py", file=sys.stderr)
            return 2
        try:
            OutputParser(args.metric_regex, enabled=not args.no_parse)
        except (re.error, ValueError) as err:
            print(f"neurotop run: --metric-regex: {err}", file=sys.stderr)
            return 2
        options = ["--no-parse"] if args.no_parse else []
        options += ["--metric-regex", args.metric_regex] if args.metric_regex else []
        name = args.name or run_name(cmd)
        return launch(root, name, args,
                      lambda run_dir, store, notify: Link.supervise(cmd, run_dir, store, notify, options=options))
    argv_ = python_argv(DEMO_MODULE, demo_options.to_argv(args))
    return launch(root, args.name, args, lambda run_dir, store, notify: Link.spawn(argv_, run_dir, store, notify))


COMMANDS = ("demo", "run", "attach", "ls")


def with_command(argv: list[str]) -> list[str]:
    """``neurotop [options]`` is ``neurotop demo [options]``: "demo" goes in where the command
    would be (after a leading ``--runs-dir DIR``) when none is there."""
    i = 0
    while i < len(argv) and (argv[i] == "--runs-dir" or argv[i].startswith("--runs-dir=")):
        i += 1 if "=" in argv[i] else 2
    if i < len(argv) and argv[i] in (*COMMANDS, "-h", "--help"):
        return argv
    return [*argv[:i], "demo", *argv[i:]]


def run_name(cmd: list[str]) -> str:
    """What a person would look for: the module of ``python -m pkg.train`` (``train``), the
    script of ``python train.py`` (``train``), else the program."""
    program = Path(cmd[0]).name
    if (program.startswith("python") or program == "torchrun") and "-m" in cmd[1:-1]:
        return cmd[cmd.index("-m", 1) + 1].rsplit(".", 1)[-1]
    scripts = [arg for arg in cmd if arg.endswith(".py")]
    return Path(scripts[0]).stem if scripts else program


Start = Callable[[Path, RunStore, Callable[[], None]], Link]


def launch(root: Path, name: str, args: argparse.Namespace, start: Start) -> int:
    run_dir = journal.create_run_dir(root, name)
    if args.headless:
        return headless(run_dir, name, start)
    from neurotop.tui.app import NeurotopApp

    app = NeurotopApp(lambda store, notify: start(run_dir, store, notify), name=name,
                      refresh_hz=args.refresh, pictures_hz=args.pictures, compare=args.compare)
    result = app.run()
    return after_ui(app, run_dir, result)


def after_ui(app, run_dir: Path, result: str | None) -> int:
    """What a person needs on the terminal once the UI is gone (about the run shown last: a
    restart made a new one)."""
    run, run_dir = app.store.run, app.link.run_dir if app.link is not None else run_dir
    if result == "detach" and not run.finished:
        print(f"The run goes on (pid {app.link.pid if app.link else '?'}). Reopen it with:\n"
              f"  {attach_command(run_dir)}")
    else:
        print(f"run {run_dir.name}: {run.state}, step {run.step:,}. Journal: {run_dir / journal.JOURNAL}")
    return 0 if run.state in ("finished", "stopped", "running", "paused") else 1


def headless(run_dir: Path, name: str, start: Start, every: float = 10.0) -> int:
    """No UI: the same run directory and journal; a short line every ``every`` seconds."""
    store = RunStore(name=name)
    link = start(run_dir, store, lambda: None)
    run = store.run
    print(f"run {run_dir.name}\njournal {run_dir / journal.JOURNAL}\n"
          f"attach with: {attach_command(run_dir)}", flush=True)
    next_line, first_step_told = time.monotonic() + every, False
    try:
        while not run.finished:
            _wait_unless_finished(store, 0.5)
            if run.finished:
                break  # end promptly: the closing line below says how it went
            if time.monotonic() < next_line and (first_step_told or run.step == 0):
                continue  # a line every `every` seconds, and one as soon as the first step is in
            first_step_told = first_step_told or run.step > 0
            next_line = time.monotonic() + every
            print(f"{time.strftime('%H:%M:%S')} {run.state} step {run.step:,} "
                  f"{run.steps_per_s:,.0f} it/s" + _last_loss(store), flush=True)
    except KeyboardInterrupt:
        link.stop()
    print(f"run {run_dir.name}: {run.state} ({run.detail or 'ok'}), step {run.step:,}", flush=True)
    return 0 if run.state in ("finished", "stopped") else 1


def _wait_unless_finished(store: RunStore, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not store.run.finished and time.monotonic() < deadline:
        time.sleep(0.1)


def _last_loss(store: RunStore) -> str:
    with store.lock:
        parts = [f"{name} {s.last_value:.4g}" for name, s in store.metrics.series.items() if len(s) and "loss" in name]
    return ("  " + "  ".join(parts)) if parts else ""


def cmd_attach(root: Path, args: argparse.Namespace) -> int:
    try:
        run_dir = journal.find_run(root, args.run)
    except LookupError as err:
        print(f"neurotop attach: {err}", file=sys.stderr)
        return 2
    from neurotop.tui.app import NeurotopApp

    info = journal.RunInfo.load(run_dir) if (run_dir / journal.RUN_JSON).exists() else None
    read_only = info is None or info.effective_state() not in ("running", "paused")
    app = NeurotopApp(lambda store, notify: Link.attach(run_dir, store, notify),
                      name=info.name if info else run_dir.name, refresh_hz=args.refresh, pictures_hz=args.pictures,
                      read_only=read_only, compare=args.compare)
    return after_ui(app, run_dir, app.run())


def cmd_ls(root: Path) -> int:
    runs = journal.list_runs(root)
    if not runs:
        print(f"no runs in {root}")
        return 0
    print(f"{'RUN':<44} {'STATE':<9} {'STEPS':>10} {'BEST VAL':>9}  {'STARTED':<16} {'DURATION':>8}  NOTES")
    for run_dir, info in runs:
        end = info.ended or (time.time() if info.effective_state() in ("running", "paused") else info.started)
        best = f"{info.best_val:.4g}" if info.best_val is not None else "-"
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.started))
        print(f"{run_dir.name:<44} {info.effective_state():<9} {info.step:>10,} {best:>9}  {started:<16} "
              f"{duration(end - info.started):>8}  {info.notes or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
