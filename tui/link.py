"""The link to a run: spawn a child or attach to one; reader threads feed the store.

Reader threads only decode and post messages into the ``RunStore``'s ``ingest`` (which has its own
lock): the run's own messages, and what the link itself sees (the process started or exited, its
output lines, lines it had to skip, a run found lost). They never write store fields, never touch
widgets, and call ``notify`` (the app's thread-safe ``post_message``).

A spawned child gets two pipes (events, control) whose fd numbers it finds in its environment,
its stdout/stderr go straight to ``output.log`` (so a dead UI can never block or kill it), and it
runs in its own session (no SIGHUP when the terminal goes away). A command that may not use the SDK
(``neurotop run``) is started under its supervisor (``neurotop.tui.supervisor``), which journals it;
the link then follows that journal as ``attach`` does.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import msgspec

from neurotop.trainer import journal
from neurotop.trainer.protocol import (ENV_CONTROL_FD, ENV_EVENTS_FD, ENV_RUN_DIR, MAX_EVENT_LINE, Command,
                                       DecodeCounts, LineFramer, Status, decode_lines, encode)
from neurotop.tui.parse import OutputParser, ParsedLine, follow_output

POLL_INTERVAL = 0.2
SUPERVISOR_MODULE = "neurotop.tui.supervisor"
SUPERVISOR_START_TIMEOUT = 30.0
READ_CHUNK = 1 << 20
FINAL_STATES = ("finished", "failed", "stopped", "lost")


class RunSink(Protocol):
    """Where a link posts what it reads: ``neurotop.tui.store.RunStore`` (the link sits below the
    store and never imports it). ``run`` is read for the run's state, step and hello."""

    run: Any

    def ingest(self, batch: list) -> None: ...


# ------------------------------------------- what the link itself sees, posted beside the run's messages
class Launched(msgspec.Struct, frozen=True):
    """The link started (or found) the run's process: it is running, under this name, since then."""

    name: str
    started: float


class OutputLines(msgspec.Struct, frozen=True):
    """Lines the run printed (stdout and stderr, from ``output.log``)."""

    lines: list[str]


class ChildExited(msgspec.Struct, frozen=True):
    """The run's process is gone, with this exit code, at ``t``. A clean end record wins."""

    code: int
    detail: str
    t: float


class Skipped(msgspec.Struct, frozen=True):
    """Lines a reader could not use: malformed, of an unknown type, or torn at the end."""

    malformed: int = 0
    unknown: int = 0
    torn: int = 0
    last_error: str = ""


#: What the link posts besides the run's own messages (``RunStore.HANDLERS`` has one handler each).
LOCAL_MESSAGES = (Launched, OutputLines, ChildExited, Skipped)


def skipped(counts: DecodeCounts) -> list[Skipped]:
    """What ``decode_lines`` counted, as a message for ``ingest`` (none when nothing was skipped)."""
    if not (counts.malformed or counts.unknown or counts.torn):
        return []
    return [Skipped(counts.malformed, counts.unknown, counts.torn, counts.last_error)]




class LinkClosed(Exception):
    """A command could not reach the run (it ended, or its socket is gone)."""


class Link:
    """One run as seen from the UI. Build with ``spawn`` or ``attach``."""

    def __init__(self, store: RunSink, run_dir: Path, notify: Callable[[], None]) -> None:
        self.store, self.run_dir, self.notify = store, run_dir, notify
        self.process: subprocess.Popen | None = None
        self.supervisor: subprocess.Popen | None = None
        self._supervisor_pid = 0  # a supervised run's, from run.json
        self._control: int | socket.socket | None = None
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self.parser = OutputParser()  # splits the output into the log pane's lines
        self.argv: list[str] = []
        self.env: dict[str, str] | None = None
        self.supervisor_options: list[str] | None = None  # set when a supervisor runs the command

    # ------------------------------------------------------------------------------ spawn
    @classmethod
    def spawn(cls, argv: list[str], run_dir: Path, store: RunSink, notify: Callable[[], None],
              env: dict[str, str] | None = None) -> "Link":
        """An SDK command as this process's own child, its events on a pipe (``neurotop demo``)."""
        link = cls(store, run_dir, notify)
        link.argv, link.env = list(argv), env
        events_r, events_w = os.pipe()
        _widen_pipe(events_w)
        control_r, control_w = os.pipe()
        child_env = dict(os.environ if env is None else env)
        child_env.update({ENV_EVENTS_FD: str(events_w), ENV_CONTROL_FD: str(control_r),
                          ENV_RUN_DIR: str(run_dir), "PYTHONUNBUFFERED": "1"})
        info = journal.RunInfo(id=run_dir.name, name=store.run.name or run_dir.name, command=list(argv))
        out = os.open(run_dir / journal.OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            link.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=child_env,
                pass_fds=(events_w, control_r), start_new_session=True, cwd=os.getcwd(),
            )
        except OSError as err:
            for fd in (events_r, events_w, control_r, control_w):
                os.close(fd)
            os.write(out, f"neurotop: cannot start {argv[0]!r}: {err.strerror or err}\n".encode())
            os.close(out)
            info.state, info.exit_code = "failed", 127
            info.save(run_dir)
            store.ingest([ChildExited(127, f"could not start: {err.strerror or err}", time.time())])
            link._start(link._tail_output)
            return link
        os.close(out)
        for fd in (events_w, control_r):
            os.close(fd)
        info.pid = link.process.pid
        info.save(run_dir)
        store.ingest([Launched(info.name, info.started)])
        link._control = control_w
        link._start(link._read_pipe, events_r)
        link._start(link._tail_output)
        link._start(link._wait_child)
        return link

    @classmethod
    def supervise(cls, argv: list[str], run_dir: Path, store: RunSink, notify: Callable[[], None],
                  env: dict[str, str] | None = None, options: tuple[str, ...] | list[str] = ()) -> "Link":
        """Any command (``neurotop run``), under a supervisor process that outlives this UI: it
        journals the command (parsing its output when it has no SDK) and serves ``control.sock``;
        this link then follows the journal and sends commands as ``attach`` does. ``options``:
        the supervisor's ``--no-parse`` / ``--metric-regex R``."""
        argv_ = [sys.executable, "-m", SUPERVISOR_MODULE, "--run-dir", str(run_dir),
                 "--name", store.run.name or run_dir.name, *options, "--", *argv]
        log = os.open(run_dir / journal.OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:  # its own session: a dropped terminal (SIGHUP) or a killed UI leaves it running
            supervisor = subprocess.Popen(argv_, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                          env=env, start_new_session=True)
        finally:
            os.close(log)
        with supervisor.stdout:  # "ready": the journal and the socket exist
            ready, _, _ = select.select([supervisor.stdout], [], [], SUPERVISOR_START_TIMEOUT)
            said = supervisor.stdout.readline() if ready else b""
        if not said:
            store.ingest([ChildExited(1, "its supervisor did not start (see the output pane)", time.time())])
        link = cls.attach(run_dir, store, notify)
        link.argv, link.env, link.supervisor_options = list(argv), env, list(options)
        link.supervisor = supervisor
        return link

    # ----------------------------------------------------------------------------- attach
    @classmethod
    def attach(cls, run_dir: Path, store: RunSink, notify: Callable[[], None]) -> "Link":
        """Rebuild from the journal, then follow it; commands go through ``control.sock``.

        A run made before supervisors journaled plain commands has no journal: its output is
        shown and its pid watched."""
        link = cls(store, run_dir, notify)
        info = journal.RunInfo.load(run_dir) if (run_dir / journal.RUN_JSON).exists() else None
        link._supervisor_pid = info.supervisor if info else 0
        if link._supervisor_pid:  # a restart from here goes under a supervisor too
            link.supervisor_options = []
        link._socket_path = Path(info.socket) if info and info.socket else journal.socket_path_for(run_dir)
        link.argv = list(info.command) if info else []
        if (run_dir / journal.JOURNAL).exists():
            link._start(link._follow_journal)
        elif info is not None:
            store.ingest([Launched(info.name, info.started)])
            link._start(link._watch_pid, info)
        link._start(link._tail_output)
        return link

    def _watch_pid(self, info: journal.RunInfo) -> None:
        """For a run with no journal: it is over when its pid is gone; run.json says how it ended."""
        while not self._closing.is_set() and journal.pid_alive(info.pid):
            time.sleep(1.0)
        try:
            info = journal.RunInfo.load(self.run_dir)
        except (OSError, ValueError, TypeError):
            pass
        state = info.effective_state()
        detail = f"{state}" + (f" (exit code {info.exit_code})" if info.exit_code else "")
        code = 0 if state == "finished" else (info.exit_code or 1)
        self.store.ingest([ChildExited(code, detail, info.ended or time.time())])
        self.notify()

    def respawn(self, run_dir: Path, store: RunSink, extra_env: dict[str, str]) -> "Link":
        """The same command as a new run in ``run_dir`` (a restart), with ``extra_env`` added. The
        new run gets its own ``store``: nothing of the old one (its step, clock, speed, a late
        exit of its process) can leak into it."""
        env = dict(os.environ if self.env is None else self.env)
        env.update(extra_env)
        if self.supervisor_options is not None:
            return Link.supervise(self.argv, run_dir, store, self.notify, env=env, options=self.supervisor_options)
        return Link.spawn(self.argv, run_dir, store, self.notify, env=env)

    # ---------------------------------------------------------------------------- commands
    def send(self, cmd: Command) -> None:
        """Send a command to the run; raises ``LinkClosed`` with a reason a person can read."""
        run = self.store.run
        if run.finished:
            raise LinkClosed(f"the run has {run.state}: commands no longer reach it")
        line = encode(cmd)
        if self.process is not None:
            if self._control is None:
                raise LinkClosed("the run has no control pipe")
            try:
                os.write(self._control, line)
            except OSError as err:
                raise LinkClosed(f"the run is not listening ({err.strerror})") from None
            return
        self._send_socket(line)

    def _send_socket(self, line: bytes) -> None:
        for attempt in (0, 1):
            if self._control is None:
                try:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(2.0)
                    sock.connect(str(self._socket_path))
                    self._control = sock
                except OSError as err:
                    raise LinkClosed(f"cannot reach the run's control socket ({err.strerror or err})") from None
            try:
                self._control.sendall(line)
                return
            except OSError:
                self._control.close()
                self._control = None
        raise LinkClosed("the run's control socket closed")

    # ------------------------------------------------------------------------------ ending
    def detach(self) -> None:
        """Leave the run alone: close our ends; the child carries on and keeps journaling."""
        self._closing.set()
        if isinstance(self._control, int):
            os.close(self._control)
        elif self._control is not None:
            self._control.close()
        self._control = None

    def stop(self, grace: float = 10.0) -> None:
        """Ask for a clean stop; escalate to SIGTERM, then SIGKILL, if our own child does not go.
        A run reached through its socket (a supervisor's, or attached) is waited for up to
        ``grace`` plus the supervisor's own SIGTERM-to-SIGKILL grace, so its end is known here."""
        try:
            self.send(Command(action="stop", source="ui"))
        except LinkClosed:
            pass
        if self.process is None:
            deadline = time.monotonic() + grace + 5.0
            while not self.store.run.finished and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL)
            return
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def pid(self) -> int | None:
        hello = self.store.run.hello
        return self.process.pid if self.process is not None else (hello.pid if hello else None)

    # ------------------------------------------------------------------------------ threads
    def _start(self, target: Callable, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=f"neurotop-{target.__name__}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _ingest_lines(self, lines: list[bytes]) -> None:
        counts = DecodeCounts()
        messages = decode_lines(lines, counts)
        self._store_safely(messages + skipped(counts))
        self.notify()

    def _store_safely(self, messages: list) -> None:
        try:
            self.store.ingest(messages)
        except Exception as err:  # a reader thread must never die: count it, show it, go on
            self._count_malformed(f"could not store a batch: {err!r}", len(messages))

    def _count_malformed(self, why: str, n: int = 1) -> None:
        self.store.ingest([Skipped(malformed=n, last_error=why)])

    def _read_pipe(self, fd: int) -> None:
        framer = LineFramer()
        try:
            while True:
                data = os.read(fd, READ_CHUNK)
                if not data:
                    break
                oversize = framer.oversize
                lines = framer.feed(_read_waiting(fd, data))
                if framer.oversize > oversize:
                    self._count_malformed(f"a line over {MAX_EVENT_LINE >> 20} MB was dropped", framer.oversize - oversize)
                if lines:
                    self._ingest_lines(lines)
        except OSError:
            pass
        finally:
            os.close(fd)
        if framer.finish():
            self.store.ingest([Skipped(torn=1)])

    def _follow_journal(self) -> None:
        path = self.run_dir / journal.JOURNAL
        while not path.exists() and not self._closing.is_set():
            time.sleep(POLL_INTERVAL)
        reader = journal.JournalReader(path)
        skipped = 0
        try:
            while not self._closing.is_set():
                lines = reader.read_lines(READ_CHUNK * 8)
                if reader.skipped > skipped:
                    self._count_malformed(f"a line over {MAX_EVENT_LINE >> 20} MB was dropped", reader.skipped - skipped)
                    skipped = reader.skipped
                if lines:
                    self._ingest_lines(lines)
                    continue
                if not self.store.run.finished and self._run_is_lost():
                    self.store.ingest([self._end_of_lost_run()])
                if self.store.run.finished:
                    if reader.finish():
                        self.store.ingest([Skipped(torn=1)])
                    self.notify()
                    break
                time.sleep(POLL_INTERVAL)
        finally:
            reader.close()

    def _tail_output(self) -> None:
        """Follow ``output.log`` into the log pane (metrics printed by a command without the SDK
        are parsed by its supervisor, into the journal)."""
        path = self.run_dir / journal.OUTPUT
        while not path.exists():
            if self._closing.wait(POLL_INTERVAL) or self.store.run.finished:
                return
        follow_output(path, self.parser, self._take_output, poll=POLL_INTERVAL, stop=self._closing.is_set,
                      ended=lambda: self.store.run.finished and self._exit_seen())

    def _take_output(self, parsed: list[ParsedLine]) -> None:
        lines = [p.text for p in parsed if not p.transient]
        if lines:
            self.store.ingest([OutputLines(lines)])
        self.notify()

    def _run_is_lost(self) -> bool:
        """Gone with no end record: neither the process nor its supervisor (which writes that
        record once the process has ended) is alive."""
        hello = self.store.run.hello
        if self.process is not None or hello is None or journal.pid_alive(hello.pid):
            return False
        if journal.pid_alive(self._supervisor_pid):
            return False
        return hello.host == socket.gethostname()

    def _end_of_lost_run(self) -> Status:
        """The end of a run whose process is gone without an end record in its journal: as its
        supervisor recorded it in ``run.json`` (what ``neurotop ls`` shows), else "lost" at its
        last sign of life. Either way its clock stops there."""
        run = self.store.run
        try:
            info = journal.RunInfo.load(self.run_dir)
        except (OSError, ValueError, TypeError):
            info = None
        if info is not None and info.ended is not None and info.state in FINAL_STATES:
            return Status(step=max(run.step, info.step), t=info.ended, state=info.state, exit_code=info.exit_code,
                          detail=f"exit code {info.exit_code}" if info.exit_code else "")
        return Status(step=run.step, t=run.last_metric_t or time.time(), state="lost",
                      detail="its process is gone and left no end record")

    def _exit_seen(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def _wait_child(self) -> None:
        code = self.process.wait()
        self.store.ingest([ChildExited(code, journal.describe_exit(code), time.time())])
        self._record_exit(code)
        self.notify()

    def _record_exit(self, code: int) -> None:
        """A child killed before its Monitor wrote an end (or one without the SDK) gets one here."""
        try:
            info = journal.RunInfo.load(self.run_dir)
        except (OSError, ValueError, TypeError):
            return
        if info.ended is None:
            run = self.store.run
            info.state, info.exit_code, info.ended = run.state, code, run.ended or time.time()
            info.step = max(info.step, run.step)
            info.save(self.run_dir)


def _widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """A bigger pipe (Linux: up to /proc/sys/fs/pipe-max-size) lets the child run further ahead
    of a busy UI before it has to drop live messages."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ImportError):
        pass


def _read_waiting(fd: int, data: bytes, limit: int = READ_CHUNK) -> bytes:
    """After a read, take what is already waiting too (up to ``limit``): a backlog is then
    decoded and stored in big batches, which is where the store is fast."""
    chunks = [data]
    size = len(data)
    while size < limit and select.select([fd], [], [], 0)[0]:
        more = os.read(fd, limit - size)
        if not more:
            break
        chunks.append(more)
        size += len(more)
    return b"".join(chunks)


def attach_command(run_dir: Path) -> str:
    """The command line that reopens ``run_dir`` from any directory, also after a reconnect: the
    neurotop on PATH (else its absolute path), and ``--runs-dir`` when the run is not in the
    per-user default (an environment variable may not be set in the next shell)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "neurotop" and argv0.exists():
        on_path = shutil.which("neurotop")
        me = str(argv0.resolve())
        exe = ["neurotop"] if on_path and str(Path(on_path).resolve()) == me else [me]
    else:  # python -m neurotop.tui.cli, or a test
        exe = [sys.executable, "-m", "neurotop.tui.cli"]
    runs = [] if run_dir.parent == journal.default_runs_root() else ["--runs-dir", str(run_dir.parent)]
    return shlex.join([*exe, "attach", run_dir.name, *runs])


def python_argv(module: str, args: list[str]) -> list[str]:
    """Run one of our modules with the same interpreter the UI runs on."""
    return [sys.executable, "-m", module, *args]
