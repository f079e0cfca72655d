"""The supervisor of a ``neurotop run`` command (DESIGN rule 9): a small process, no Textual, that
outlives any UI.

``python -m neurotop.tui.supervisor --run-dir DIR [--name N] [--no-parse | --metric-regex R] -- CMD``

It starts CMD in its own session (its own process group, no SIGHUP), its stdout and stderr going
straight to ``output.log``; it owns that process group and writes the run's journal: a ``hello``
naming the command and the controls it accepts, the metrics parsed from the output (``parse.py``),
notes, pauses, status and the exit. It serves ``control.sock`` (owner-only) so a live UI or a later
``neurotop attach`` controls the run the same way as an SDK run: pause is SIGSTOP of the group,
resume SIGCONT, stop SIGTERM and then SIGKILL after a grace, and the run ends as ``stopped``.

A command that uses the SDK says ``hello`` on the events pipe it inherits; from then on its own
Monitor journals, and the supervisor only forwards commands to it and records an exit the Monitor
could not (killed, crashed).

The process that starts a supervisor reads one line, ``ready``, from its stdout once the journal and
the socket exist (see ``Link.supervise``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from neurotop.trainer import journal
from neurotop.trainer.control import ControlServer
from neurotop.trainer.protocol import (
    ENV_CONTROL_FD, ENV_EVENTS_FD, ENV_RUN_DIR, ENV_SUPERVISED, PROTOCOL_VERSION, Command, DecodeCounts, LineFramer, Event, Hello, Metric,
    ParamChange, Status, decode_lines, encode,
)
from neurotop.tui.parse import OutputParser, ParsedLine, follow_output

READY = b"ready\n"
#: What a command without the SDK accepts; a checkpoint or a parameter needs the SDK.
PLAIN_CONTROLS = ["pause", "resume", "stop", "note"]
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
SDK_STOP_GRACE = 10.0  # an SDK run stops at its next step: it gets longer before SIGTERM
STATUS_INTERVAL = 1.0
POLL_INTERVAL = 0.1


class Supervisor:
    """One command, its process group, its journal and its control socket."""

    def __init__(self, cmd: list[str], run_dir: Path, name: str, parser: OutputParser) -> None:
        self.cmd, self.run_dir, self.name, self.parser = cmd, run_dir, name, parser
        self.info = journal.RunInfo(id=run_dir.name, name=name, command=list(cmd), supervisor=os.getpid())
        self.process: subprocess.Popen | None = None
        self.uses_sdk = False  # the command said hello on the events pipe: its Monitor journals
        self.sdk_ended = ""  # ... and the state its own end record gave
        self.paused = False
        self.stop_asked = False
        self.step = 0
        self._parsed_step: int | None = None
        self._lock = threading.RLock()  # one journal line, one state change at a time (re-entered by a signal)
        self._done = threading.Event()
        self._journal = os.open(run_dir / journal.JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._control_w: int | None = None
        self._control: ControlServer | None = None

    # ------------------------------------------------------------------------------- running
    def start(self) -> bool:
        """Bind the socket, start the command, journal its hello. False when it could not start."""
        self._control = ControlServer(self.run_dir, None, self.apply, self._warn)
        self.info.socket = self._control.socket_path
        events_r, events_w = os.pipe()
        control_r, control_w = os.pipe()
        env = dict(os.environ, **{ENV_EVENTS_FD: str(events_w), ENV_CONTROL_FD: str(control_r),
                                  ENV_RUN_DIR: str(self.run_dir), ENV_SUPERVISED: "1",
                                  "PYTHONUNBUFFERED": "1"})
        out = os.open(self.run_dir / journal.OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                            pass_fds=(events_w, control_r), start_new_session=True)
        except OSError as err:
            why = f"could not start: {err.strerror or err}"
            os.write(out, f"neurotop: cannot start {self.cmd[0]!r}: {err.strerror or err}\n".encode())
            self._write(self._hello(0))
            self._end("failed", 127, why)
            return False
        finally:
            os.close(out)
            os.close(events_w)
            os.close(control_r)
        self._control_w = control_w
        self.info.pid = self.process.pid
        self._write(self._hello(self.process.pid))
        self._write(Status(step=0, t=time.time(), state="running"))
        self.info.save(self.run_dir)
        for target, args in ((self._read_events, (events_r,)), (self._tail_output, ())):
            threading.Thread(target=target, args=args, name=f"supervisor-{target.__name__}", daemon=True).start()
        self._control.start()
        return True

    def wait(self) -> int:
        """Until the command ends: a status line now and then, and the end record."""
        last_step, last_t = 0, time.monotonic()
        while True:
            try:
                code = self.process.wait(STATUS_INTERVAL)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            with self._lock:  # never a "running" line after a pause's "paused"
                moved = not self.uses_sdk and not self.paused and self.step != last_step
                if moved:
                    rate = (self.step - last_step) / (now - last_t)
                    self._write_locked(Status(step=self.step, t=time.time(), state="running",
                                              steps_per_s=max(rate, 0.0)))
                    self.info.step = self.step
            if moved:  # (an SDK run keeps its own run.json)
                self._save_info()
            last_step, last_t = self.step, now
        self._done.wait(5.0)  # the output's last lines are parsed before the end record
        if self.sdk_ended:
            self._close(self.sdk_ended, code)
            return code
        if self.stop_asked:
            self._end("stopped", code, "asked to stop" + (f"; it {journal.describe_exit(code)}" if code else ""))
        else:
            self._end("finished" if code == 0 else "failed", code, journal.describe_exit(code))
        return code

    # ------------------------------------------------------------------------------ commands
    def apply(self, cmd: Command) -> None:
        """A command from a UI: to the SDK when the command has one, else done here."""
        if self.uses_sdk and cmd.action != "stop":
            self._forward(cmd)
            return
        now = time.time()
        with self._lock:
            if cmd.action in ("pause", "resume"):
                want = cmd.action == "pause"
                if self.paused != want:
                    self.paused = want
                    self._signal(signal.SIGSTOP if want else signal.SIGCONT)
                    self._write_locked(Event(step=self.step, t=now, kind=cmd.action, source=cmd.source))
                    self._write_locked(Status(step=self.step, t=now, state="paused" if want else "running"))
            elif cmd.action == "stop":
                if not self.stop_asked:
                    self.stop_asked = True
                    if not self.uses_sdk:  # an SDK run journals the stop it is given
                        self._write_locked(Event(step=self.step, t=now, kind="stop", source=cmd.source,
                                                 text="stop asked"))
                    threading.Thread(target=self._stop, args=(cmd,), daemon=True).start()
            elif cmd.action == "note":
                self._write_locked(Event(step=self.step, t=now, kind="note", text=cmd.text[:2000], source=cmd.source))
                self.info.notes += 1
            elif cmd.action == "set":
                self._write_locked(ParamChange(step=self.step, t=now, name=cmd.name, new=cmd.value, ok=False,
                                               reason="the command declares no parameters (it does not use the SDK)",
                                               source=cmd.source))
            else:
                self._write_locked(Event(step=self.step, t=now, kind="warning", source=cmd.source,
                                         text=f"{cmd.action} needs the SDK in the training script"))
        if cmd.action == "note":
            self._save_info()

    def _stop(self, cmd: Command) -> None:
        """Ask an SDK run first; then SIGTERM the group (woken if paused), then SIGKILL."""
        if self.uses_sdk:
            self._forward(cmd)
            if self._exited_within(SDK_STOP_GRACE):
                return
        self._signal(signal.SIGTERM)
        if self.paused:
            self._signal(signal.SIGCONT)
        if not self._exited_within(STOP_GRACE):
            self._signal(signal.SIGKILL)

    def _exited_within(self, seconds: float) -> bool:
        try:
            self.process.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _forward(self, cmd: Command) -> None:
        try:
            os.write(self._control_w, encode(cmd))
        except (OSError, TypeError):
            pass  # the command has gone: its exit is recorded by wait()

    # ------------------------------------------------------------------------------- threads
    def _tail_output(self) -> None:
        """Parse ``output.log`` as the command writes it; metrics go to the journal."""
        follow_output(self.run_dir / journal.OUTPUT, self.parser, self._take,
                      ended=lambda: self.process.poll() is not None, poll=POLL_INTERVAL)
        self._done.set()

    def _take(self, parsed: list[ParsedLine]) -> None:
        if self.uses_sdk:
            return  # the journal has the SDK's metrics: printed ones would double them
        now = time.time()
        metrics = []
        for p in parsed:
            if p.step is not None:
                self._parsed_step = p.step
            if p.values:  # a line with no step (a validation summary) goes at the last step seen
                step = p.step if p.step is not None else (self._parsed_step if self._parsed_step is not None else p.lineno)
                metrics.append(Metric(step=step, t=now, values=p.values, epoch=p.epoch))
                self._track_best(p.values)
        if metrics:
            self.step = max(self.step, max(m.step for m in metrics))
            with self._lock:
                self._append(b"".join(encode(m) for m in metrics))

    def _track_best(self, values: dict) -> None:
        val = values.get("val_loss")
        if val is not None and val == val and (self.info.best_val is None or val < self.info.best_val):
            self.info.best_val = float(val)

    def _read_events(self, fd: int) -> None:
        """The SDK's events pipe: only its hello and its end matter here (it journals itself)."""
        framer = LineFramer()
        counts = DecodeCounts()
        try:
            while True:
                data = os.read(fd, 1 << 20)
                if not data:
                    return
                lines = framer.feed(data)
                if self.sdk_ended:
                    continue
                for msg in decode_lines([ln for ln in lines if b'"hello"' in ln or b'"status"' in ln], counts):
                    if isinstance(msg, Hello):
                        self.uses_sdk = True
                    elif isinstance(msg, Status) and msg.state in ("finished", "failed", "stopped"):
                        self.sdk_ended = msg.state
        except OSError:
            return
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------- writing
    def _hello(self, pid: int) -> Hello:
        return Hello(version=PROTOCOL_VERSION, run_id=self.run_dir.name, name=self.name, pid=pid,
                     host=self.info.host, started=self.info.started, argv=list(self.cmd), controls=PLAIN_CONTROLS)

    def _warn(self, text: str, source: str) -> None:
        self._write(Event(step=self.step, t=time.time(), kind="warning", source="supervisor", text=text))

    def _write(self, msg) -> None:
        with self._lock:
            self._write_locked(msg)

    def _write_locked(self, msg) -> None:
        self._append(encode(msg))

    def _append(self, lines: bytes) -> None:
        try:
            os.write(self._journal, lines)
        except OSError:
            pass  # a full disk must not take the run down with it; output.log still has everything

    def _end(self, state: str, code: int, detail: str) -> None:
        self._write(Status(step=self.step, t=time.time(), state=state, exit_code=code, detail=detail))
        self._close(state, code)

    def _close(self, state: str, code: int) -> None:
        control, self._control = self._control, None
        if control is not None:
            control.close()
        if self.uses_sdk:  # the Monitor kept run.json; add only what it could not write
            try:
                self.info = journal.RunInfo.load(self.run_dir)
            except (OSError, ValueError, TypeError):
                pass
            if self.info.ended is not None:
                return
        self.info.state, self.info.exit_code, self.info.ended = state, code, time.time()
        self.info.step = max(self.info.step, self.step)
        self._save_info()

    def _save_info(self) -> None:
        try:
            self.info.save(self.run_dir)
        except OSError:
            pass  # run.json is a summary; the journal is the truth


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m neurotop.tui.supervisor",
                                 description="Supervise one command as a neurotop run (started by `neurotop run`).")
    ap.add_argument("--run-dir", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--no-parse", action="store_true")
    ap.add_argument("--metric-regex")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    try:
        parser = OutputParser(args.metric_regex, enabled=not args.no_parse)
    except (re.error, ValueError) as err:
        print(f"supervisor: --metric-regex: {err}", file=sys.stderr)
        return 2
    supervisor = Supervisor(cmd, args.run_dir, args.name, parser)
    started = supervisor.start()
    for sig in (signal.SIGTERM, signal.SIGINT):  # someone stopping us stops the run, cleanly recorded
        signal.signal(sig, lambda *_: supervisor.apply(Command(action="stop", source="signal")))
    _say_ready()
    return supervisor.wait() if started else 127


def _say_ready() -> None:
    """Tell the launcher the journal and socket exist; stdout then goes nowhere (the launcher and
    its terminal may be gone long before the run ends)."""
    try:
        os.write(1, READY)
    except OSError:
        pass
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


if __name__ == "__main__":
    sys.exit(main())
