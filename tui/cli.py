"""`neurotop` command line: demo (the default), run, attach, ls."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from neurotop.trainer import journal
from neurotop.tui.link import Link, python_argv
from neurotop.tui.parse import OutputParser
from neurotop.tui.store import RunStore

DEMO_MODULE = "neurotop.trainer.demo"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", help="where runs live (default ./runs, or $NEUROTOP_RUNS)")
    common.add_argument("--refresh", type=float, default=4.0,
                        help="repaints per second of the text panes (default 4)")
    common.add_argument("--pictures", type=float, default=0.5,
                        help="repaints per second of the chart, heatmaps and log (default 0.5: they "
                             "rewrite whole panes, the main cost in bytes over SSH)")

    ap = argparse.ArgumentParser(prog="neurotop", description="A top for neural-network training.",
                                 parents=[common])
    compare_help = "overlay another run (id, unique part of it, name or directory): its loss on the chart, " \
                   "its neuron health and gradients in the pathways view (v), aligned by step"
    ap.add_argument("--compare", metavar="RUN", help=compare_help)
    sub = ap.add_subparsers(dest="command")
    demo = sub.add_parser("demo", parents=[common], help="the built-in autoencoder on the digits, live",
                          description="Train the built-in autoencoder under the live TUI. Options after "
                                      "the known ones go to the demo (--epochs, --latent, --lr, --batch-size, --device).")
    demo.add_argument("--headless", action="store_true", help="no UI: run and journal only")
    demo.add_argument("--compare", metavar="RUN", default=argparse.SUPPRESS, help=compare_help)
    run = sub.add_parser("run", parents=[common], help="supervise any command: neurotop run -- CMD ...")
    run.add_argument("--name", help="the run's name (default: the command's)")
    run.add_argument("--headless", action="store_true", help="no UI: run and journal only")
    run.add_argument("--no-parse", action="store_true", help="do not read metrics from the command's output")
    run.add_argument("--metric-regex", help="read metrics with this regex: named groups are metric names "
                                           "(or name/value pairs), a group named step is the step")
    run.add_argument("--compare", metavar="RUN", default=argparse.SUPPRESS, help=compare_help)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    attach = sub.add_parser("attach", parents=[common], help="reopen a live or finished run (default: newest)")
    attach.add_argument("run", nargs="?", help="run id (or a unique part of it), name, or directory")
    attach.add_argument("--compare", metavar="RUN", default=argparse.SUPPRESS, help=compare_help)
    sub.add_parser("ls", parents=[common], help="list runs, newest first")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = build_parser().parse_known_args(argv)
    command = args.command or "demo"
    root = journal.runs_root(args.runs_dir)
    if command == "ls":
        return cmd_ls(root)
    try:
        args.compare = journal.find_run(root, args.compare) if getattr(args, "compare", None) else None
    except LookupError as err:
        print(f"neurotop: --compare: {err}", file=sys.stderr)
        return 2
    if command == "attach":
        return cmd_attach(root, args)
    if command == "run":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else list(args.cmd)
        if extra:
            print(f"neurotop run: unknown option(s) {' '.join(extra)}; the command goes after --", file=sys.stderr)
            return 2
        if not cmd:
            print("neurotop run: give the command after --, e.g. neurotop run -- python train.py", file=sys.stderr)
            return 2
        try:
            parser = OutputParser(args.metric_regex, enabled=not args.no_parse)
        except (re.error, ValueError) as err:
            print(f"neurotop run: --metric-regex: {err}", file=sys.stderr)
            return 2
        return launch(root, cmd, args.name or Path(cmd[0]).name, args, parser)
    return launch(root, python_argv(DEMO_MODULE, extra), "autoencoder-digits", args)


def launch(root: Path, cmd: list[str], name: str, args: argparse.Namespace,
           parser: OutputParser | None = None) -> int:
    run_dir = journal.create_run_dir(root, name)
    if getattr(args, "headless", False):
        return headless(run_dir, cmd, name, parser)
    from neurotop.tui.app import NeurotopApp

    app = NeurotopApp(lambda store, notify: Link.spawn(cmd, run_dir, store, notify, parser=parser), name=name,
                      refresh_hz=args.refresh, pictures_hz=args.pictures, compare=getattr(args, "compare", None))
    result = app.run()
    return after_ui(app, run_dir, result)


def after_ui(app, run_dir: Path, result: str | None) -> int:
    """What a person needs on the terminal once the UI is gone (about the run shown last: a
    restart made a new one)."""
    run, run_dir = app.store.run, app.link.run_dir if app.link is not None else run_dir
    if result == "detach" and not run.finished:
        print(f"The run goes on (pid {app.link.pid if app.link else '?'}). Reopen it with:\n"
              f"  neurotop attach {run_dir.name}{_runs_flag(run_dir)}")
    else:
        print(f"run {run_dir.name}: {run.state}, step {run.step:,}. Journal: {run_dir / journal.JOURNAL}")
    return 0 if run.state in ("finished", "stopped", "running", "paused") else 1


def _runs_flag(run_dir: Path) -> str:
    default = journal.runs_root(None)
    return "" if run_dir.parent == default else f" --runs-dir {run_dir.parent}"


def headless(run_dir: Path, cmd: list[str], name: str, parser: OutputParser | None = None,
             every: float = 10.0) -> int:
    """No UI: the same run directory and journal; a short line every ``every`` seconds."""
    store = RunStore(name=name)
    link = Link.spawn(cmd, run_dir, store, lambda: None, parser=parser)
    run = store.run
    print(f"run {run_dir.name}\njournal {run_dir / journal.JOURNAL}\n"
          f"attach with: neurotop attach {run_dir.name}{_runs_flag(run_dir)}", flush=True)
    try:
        while not run.finished:
            _wait_unless_finished(store, min(every, 0.5) if run.step == 0 else every)
            if run.finished:
                break  # end promptly: the closing line below says how it went
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
                      name=info.name if info else run_dir.name, refresh_hz=args.refresh, pictures_hz=args.pictures, read_only=read_only,
                      compare=getattr(args, "compare", None))
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
        mins, secs = divmod(int(end - info.started), 60)
        print(f"{run_dir.name:<44} {info.effective_state():<9} {info.step:>10,} {best:>9}  {started:<16} "
              f"{mins // 60:02d}:{mins % 60:02d}:{secs:02d}  {info.notes or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
