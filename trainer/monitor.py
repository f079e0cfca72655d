"""Monitor: the SDK a training script uses. Declare, step, read params, log.

    mon = Monitor(model, params={"lr": Param(1e-3, min=1e-6, max=1.0, log=True)})
    while mon.step():                     # applies pending commands, honours pause and stop
        opt.param_groups[0]["lr"] = mon.params["lr"]
        mon.log(loss=loss.item())

``log()`` only appends to a deque (DESIGN rule 2). A writer thread encodes batches to the journal
(always) and to the events pipe (when a UI listens; dropped for the pipe, never for the journal,
when the UI stops reading). Commands arrive on the control pipe and on ``control.sock``; both are
validated here, applied at the next step boundary and journaled with their source.
"""

from __future__ import annotations

import collections
import errno
import json
import math
import os
import select
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from neurotop.trainer import journal
from neurotop.trainer.params import Param, Refused
from neurotop.trainer.protocol import (
    ENV_CONTROL_FD,
    ENV_EVENTS_FD,
    ENV_PARAMS,
    ENV_RESUME,
    ENV_RUN_DIR,
    PROTOCOL_VERSION,
    Activations,
    Command,
    DecodeCounts,
    Event,
    Hello,
    LayerInfo,
    Metric,
    ParamChange,
    Sample,
    Status,
    Health, Gradients, Latent, Signal,
    decode_lines,
    encode,
)

#: Live messages that may be dropped for the pipe when the UI falls behind (never for the journal).
_LOSSY = (Metric, Activations, Sample, Health, Gradients, Latent, Signal)
PIPE_BACKLOG_LIMIT = 8 << 20
BATCH = 10_000  # queue items encoded between two flushes
FLUSH_INTERVAL = 0.1
STATUS_INTERVAL = 1.0


class Monitor:
    """Connects a training loop to neurotop. See the module docstring for the five-line use.

    ``run_dir``: where the journal goes; by default the one ``neurotop`` gave through the
    environment, else a new one under ``$NEUROTOP_RUNS`` or ``./runs``. ``enabled=False`` makes
    every call a no-op that costs nothing. ``save(path)`` is called on a checkpoint command; by
    default the model's (and ``optimizer``'s) state dicts are saved with ``torch.save``, and
    ``load(path)`` (default: ``torch.load(weights_only=True)`` into the same) restores them on a
    roll-back or when ``neurotop`` restarts the run from a checkpoint.

    ``guard``: when ``guard_key`` turns NaN/Inf or jumps above ``spike`` × its running average, the
    run pauses at the next step and the UI offers to roll back, halve the learning rate or go on.
    Without the guard the same is flagged (a warning event) and training carries on.
    """

    def __init__(
        self,
        model: Any = None,
        params: dict[str, Param] | None = None,
        *,
        name: str | None = None,
        optimizer: Any = None,
        save: Callable[[Path], None] | None = None,
        load: Callable[[Path], int | None] | None = None,
        guard: bool = False,
        guard_key: str = "loss",
        spike: float = 10.0,
        run_dir: str | os.PathLike | None = None,
        runs_dir: str | os.PathLike | None = None,
        enabled: bool = True,
        device: str = "",
    ) -> None:
        self.enabled = enabled
        self.declared: dict[str, Param] = dict(params or {})
        for key, p in self.declared.items():
            p.name = key
        self.params: dict[str, Any] = {k: p.default for k, p in self.declared.items()}
        self.step_count = 0
        self.epoch: int | None = None
        self.paused = False
        self.stop_requested = False
        self.model, self.optimizer, self._save, self._load = model, optimizer, save, load
        self.guard, self.guard_key, self.spike = guard, guard_key, spike
        self._guard_limit = math.inf  # raised by the writer thread from the running average
        self._guard_ema: float | None = None
        self._guard_seen = 0
        self._diverged: tuple[int, float] | None = None
        self._diverging = False
        self.last_checkpoint: Path | None = None
        self.run_dir: Path | None = None
        if not enabled:
            return

        self.name = name or Path(sys.argv[0]).stem or "run"
        env_dir = os.environ.get(ENV_RUN_DIR)
        if run_dir is not None:
            self.run_dir = journal.make_private_dir(Path(run_dir))
        elif env_dir:
            self.run_dir = journal.make_private_dir(Path(env_dir))
        else:
            self.run_dir = journal.create_run_dir(journal.runs_root(runs_dir), self.name)
        self.run_id = self.run_dir.name
        self.info = self._load_or_new_info()

        self._queue: collections.deque = collections.deque()
        self._commands: collections.deque[Command] = collections.deque()
        self._command_ready = threading.Event()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self._failure: str | None = None
        self._events_fd = _fd_from_env(ENV_EVENTS_FD)
        self._control_fd = _fd_from_env(ENV_CONTROL_FD)
        if self._events_fd is not None:
            os.set_blocking(self._events_fd, False)
        self._journal_fd = os.open(
            self.run_dir / journal.JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
        )
        self._journal_pending = bytearray()
        self._pipe_pending = bytearray()
        self.dropped_for_pipe = 0
        self.journal_error = ""
        self._last_rate = (time.perf_counter(), 0)
        self._steps_per_s = 0.0
        self._mon_seconds = 0.0  # time spent in step()/probes in the training thread
        self._writer_cpu = 0.0
        self._t_start = time.perf_counter()
        self.overhead = 0.0

        self._emit(self._hello(device))
        resume = os.environ.get(ENV_RESUME)
        if resume:
            self._restore(Path(resume), source="restart")
        self._take_env_params()  # after the restore: the changes are made at the step the run resumes from
        self._threads = [threading.Thread(target=self._writer, name="neurotop-writer", daemon=True)]
        if self._control_fd is not None:
            self._threads.append(
                threading.Thread(target=self._read_control_pipe, name="neurotop-control", daemon=True)
            )
        self._server = self._open_socket()
        if self._server is not None:
            self._threads.append(
                threading.Thread(target=self._serve_socket, name="neurotop-socket", daemon=True)
            )
        for t in self._threads:
            t.start()
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        import atexit

        atexit.register(self.close)

    # ----------------------------------------------------------------- the training loop's calls
    def step(self, step: int | None = None) -> bool:
        """Mark a step boundary: apply pending commands, wait while paused.

        Returns False once a stop was asked for, so ``while mon.step():`` ends cleanly.
        """
        if not self.enabled:
            self.step_count = self.step_count + 1 if step is None else step
            return True
        t0 = time.perf_counter()
        self.step_count = self.step_count + 1 if step is None else step
        if self._diverged is not None:
            self._on_divergence()
        if self._commands:
            self._apply_commands()
        while self.paused and not self.stop_requested:
            self._command_ready.wait(0.25)
            self._command_ready.clear()
            self._apply_commands()
            t0 = time.perf_counter()  # paused time is not monitoring cost
        self._mon_seconds += time.perf_counter() - t0
        return not self.stop_requested

    def log(self, step: int | None = None, **values: float) -> None:
        """Record named values at this step. Only enqueues: the writer thread encodes."""
        if self.enabled:
            self._queue.append((self.step_count if step is None else step, time.time(), self.epoch, values))
            watched = values.get(self.guard_key)
            if watched is not None and not watched < self._guard_limit:  # NaN fails every comparison
                self._diverged = (self.step_count if step is None else step, watched)

    def note(self, text: str, kind: str = "note", source: str = "script") -> None:
        if self.enabled:
            self._emit(Event(step=self.step_count, t=time.time(), kind=kind, text=text, source=source))
            self.info.notes += kind == "note"  # `neurotop ls` counts them

    def emit(self, message: Any) -> None:
        """Send a protocol message (activations, samples) built elsewhere, e.g. by probes."""
        if self.enabled:
            self._queue.append(message)

    def add_monitoring_time(self, seconds: float) -> None:
        """Probes report their training-thread time here so the cost meter includes it."""
        self._mon_seconds += seconds

    def checkpoint(self, source: str = "script", name: str | None = None) -> Path | None:
        """Save now, atomically (temporary file, then rename), and journal where it went.

        ``name`` overwrites one file (e.g. ``"last-good"`` for a rolling checkpoint)."""
        if not self.enabled:
            return None
        ckpt_dir = journal.make_private_dir(self.run_dir / "checkpoints")
        path = ckpt_dir / f"{name or f'step-{self.step_count:09d}'}.pt"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            if self._save is not None:
                self._save(tmp)
            else:
                import torch

                state = {"step": self.step_count, "params": dict(self.params)}
                if self.model is not None:
                    state["model"] = self.model.state_dict()
                if self.optimizer is not None:
                    state["optimizer"] = self.optimizer.state_dict()
                torch.save(state, tmp)
            os.replace(tmp, path)
        except Exception as err:  # a failed save must not cost the run
            tmp.unlink(missing_ok=True)
            self.note(f"checkpoint failed: {err}", kind="warning", source=source)
            return None
        self.last_checkpoint = path
        self._emit(Event(step=self.step_count, t=time.time(), kind="checkpoint", path=str(path), source=source))
        return path

    def _restore(self, path: Path, source: str) -> bool:
        """Load a checkpoint into the model and optimizer (or through ``load``). Never unpickles
        arbitrary objects: ``torch.load(weights_only=True)``."""
        try:
            if self._load is not None:
                step = self._load(path)
            else:
                import torch

                state = torch.load(path, weights_only=True, map_location="cpu")
                if self.model is not None and "model" in state:
                    self.model.load_state_dict(state["model"])
                if self.optimizer is not None and "optimizer" in state:
                    self.optimizer.load_state_dict(state["optimizer"])
                step = state.get("step")
        except Exception as err:
            self.note(f"could not restore {path.name}: {err}", kind="warning", source=source)
            return False
        if isinstance(step, int) and source == "restart":
            self.step_count = step
            self._last_rate = (time.perf_counter(), step)  # the speed counts this run's steps only
        self._emit(Event(step=self.step_count, t=time.time(), kind="restore", path=str(path), source=source,
                         text=f"restored {path.name}"))
        return True

    def _on_divergence(self) -> None:
        """Flag once per episode; with the guard on, pause before the next optimizer step."""
        step, value = self._diverged
        self._diverged = None
        if self._diverging:
            return
        self._diverging = True
        what = "is not finite" if not math.isfinite(value) else f"jumped to {value:.4g}"
        text = f"{self.guard_key} {what} at step {step:,}"
        if self.guard and not self.paused:
            self.paused = True
            self._emit(Event(step=step, t=time.time(), kind="diverged", source="guard",
                             text=f"{text}: paused by the guard", path=str(self.last_checkpoint or "")))
            self._emit(self._status("paused"))
        else:
            self._emit(Event(step=step, t=time.time(), kind="warning", source="guard", text=text))

    def close(self, state: str | None = None, exit_code: int | None = None, detail: str = "") -> None:
        """Write the end record, flush everything, stop the threads. Safe to call twice."""
        if not self.enabled or self._closed:
            return
        self._closed = True
        if state is None:
            state = "failed" if self._failure else ("stopped" if self.stop_requested else "finished")
            detail = detail or (self._failure or "")
            if exit_code is None and self._failure:
                exit_code = 1
        self._emit(self._status(state, exit_code=exit_code, detail=detail))
        self._closing.set()
        self._wake.set()
        self._threads[0].join(timeout=10)
        if self._server is not None:
            try:
                self._server.close()
                os.unlink(self.info.socket)
            except OSError:
                pass
        os.close(self._journal_fd)
        self.info.state, self.info.exit_code, self.info.ended = state, exit_code, time.time()
        self.info.step = self.step_count
        self._save_info()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            self._failure = "".join(traceback.format_exception_only(exc_type, exc)).strip()
        self.close()

    # ----------------------------------------------------------------------------- commands
    def _apply_commands(self) -> None:
        while self._commands:
            self._apply(self._commands.popleft())

    def _apply(self, cmd: Command) -> None:
        now, step = time.time(), self.step_count
        if cmd.action == "set":
            self._apply_set(cmd, now, step)
        elif cmd.action in ("pause", "resume"):
            want = cmd.action == "pause"
            if not want:
                self._diverging = False  # a person looked at it: flag the next episode again
            if self.paused != want:
                self.paused = want
                self._emit(Event(step=step, t=now, kind=cmd.action, source=cmd.source))
                self._emit(self._status("paused" if want else "running"))
        elif cmd.action == "checkpoint":
            self.checkpoint(source=cmd.source)
        elif cmd.action == "rollback":
            if self.last_checkpoint is None:
                self.note("no checkpoint to roll back to", kind="warning", source=cmd.source)
            elif self._restore(self.last_checkpoint, source=cmd.source):
                self._diverging = False
        elif cmd.action == "stop":
            self.stop_requested = True
            self._emit(Event(step=step, t=now, kind="stop", source=cmd.source, text="stop asked"))
        elif cmd.action == "note":
            self.note(cmd.text[:2000], source=cmd.source)

    def _apply_set(self, cmd: Command, now: float, step: int) -> None:
        param = self.declared.get(cmd.name)
        old = self.params.get(cmd.name)
        if param is None:
            self._emit(ParamChange(step=step, t=now, name=cmd.name, new=cmd.value, ok=False,
                                   reason="no such parameter", source=cmd.source))
            return
        try:
            value = param.validate(cmd.value)
        except Refused as err:
            self._emit(ParamChange(step=step, t=now, name=cmd.name, new=cmd.value, old=old, ok=False,
                                   reason=str(err), source=cmd.source))
            return
        if param.on_change is not None:
            try:
                param.on_change(value, old)
            except Exception as err:  # the script said no: nothing is applied
                self._emit(ParamChange(step=step, t=now, name=cmd.name, new=value, old=old, ok=False,
                                       reason=f"on_change failed: {err}", source=cmd.source))
                return
        self.params[cmd.name] = value
        self._emit(ParamChange(step=step, t=now, name=cmd.name, new=value, old=old, source=cmd.source))

    def submit(self, cmd: Command) -> None:
        """Queue a command as if it came from a UI (thread-safe); applied at the next step."""
        self._commands.append(cmd)
        self._command_ready.set()

    def _take_command_lines(self, lines: list[bytes], source: str) -> None:
        counts = DecodeCounts()
        for msg in decode_lines(lines, counts):
            if isinstance(msg, Command):
                self.submit(Command(action=msg.action, name=msg.name, value=msg.value,
                                    text=msg.text, source=msg.source or source))
        if counts.malformed or counts.unknown:
            self.note(f"ignored {counts.malformed + counts.unknown} bad command line(s) from {source}: "
                      f"{counts.last_error}", kind="warning", source=source)

    def _read_control_pipe(self) -> None:
        _read_command_stream(self._control_fd, self._closing, lambda ls: self._take_command_lines(ls, "ui"))

    def _open_socket(self) -> socket.socket | None:
        try:
            path = journal.socket_path_for(self.run_dir)
            _remove_stale_socket(path)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o177)
            try:
                server.bind(str(path))
            finally:
                os.umask(old_umask)
            os.chmod(path, 0o600)
            server.listen(8)
            server.settimeout(0.5)
        except OSError as err:
            self.note(f"control socket unavailable: {err}", kind="warning", source="monitor")
            return None
        self.info.socket = str(path)
        self._save_info()
        return server

    def _serve_socket(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            _read_command_stream(conn.fileno(), self._closing,
                                 lambda ls: self._take_command_lines(ls, "attach"))

    # ------------------------------------------------------------------------------ writing
    def _emit(self, message: Any) -> None:
        self._queue.append(message)
        self._wake.set()

    def _writer(self) -> None:
        last_status = time.perf_counter()
        while True:
            closing = self._closing.is_set()
            t_cpu = time.thread_time()
            self._write_batch()
            now = time.perf_counter()
            if now - last_status >= STATUS_INTERVAL:
                last_status = now
                self._update_rates(now)
                self._queue.append(self._status("paused" if self.paused else "running"))
                self._save_info()
            self._writer_cpu += time.thread_time() - t_cpu
            if closing:
                self._write_batch()
                return
            if self._pipe_pending and self._events_fd is not None:
                try:  # the UI is behind: wake as soon as the pipe has room, not a whole interval later
                    select.select([], [self._events_fd], [], FLUSH_INTERVAL)
                except (OSError, ValueError):
                    pass
            else:
                self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()

    def _write_batch(self) -> None:
        """Drain the queue in slices of ``BATCH`` items, flushing between them, so neither buffer
        grows with a burst; live messages past ``PIPE_BACKLOG_LIMIT`` are dropped for the pipe."""
        queue = self._queue
        if not queue and not self._journal_pending and not self._pipe_pending:
            return
        while True:
            self._encode_slice(min(len(queue), BATCH))
            self._flush_journal()
            self._flush_pipe()
            if not queue:
                return

    def _encode_slice(self, n: int) -> None:
        queue = self._queue
        journal_buf = self._journal_pending
        pipe_buf = self._pipe_pending if self._events_fd is not None else None
        for _ in range(n):
            item = queue.popleft()
            if type(item) is tuple:
                step, t, epoch, values = item
                item = Metric(step=step, t=t, values=_floats(values), epoch=epoch)
                if values:
                    self._track_best(values)
                    self._track_guard(item.values.get(self.guard_key))
            line = encode(item)
            journal_buf += line
            if pipe_buf is not None:
                if len(pipe_buf) < PIPE_BACKLOG_LIMIT or not isinstance(item, _LOSSY):
                    pipe_buf += line
                else:
                    self.dropped_for_pipe += 1
        self._flush_journal()
        self._flush_pipe()

    def _flush_journal(self) -> None:
        buf = self._journal_pending
        while buf:
            try:
                written = os.write(self._journal_fd, buf)
            except OSError as err:  # disk full, unwritable: keep training, keep the bytes, retry
                if err.errno == errno.EINTR:
                    continue
                if not self.journal_error:
                    print(f"neurotop: cannot write the journal ({err}); training goes on, retrying",
                          file=sys.stderr, flush=True)
                self.journal_error = str(err)
                if len(buf) > 256 << 20:  # bounded: past this the oldest half goes, whole lines only
                    del buf[: buf.find(b"\n", len(buf) // 2) + 1]
                return
            del buf[:written]
        if self.journal_error:
            print("neurotop: journal writable again", file=sys.stderr, flush=True)
            self.journal_error = ""

    def _flush_pipe(self) -> None:
        buf = self._pipe_pending
        while buf and self._events_fd is not None:
            try:
                written = os.write(self._events_fd, buf)
            except BlockingIOError:
                return  # the UI is behind; what waits is bounded by PIPE_BACKLOG_LIMIT
            except OSError:  # EPIPE: the UI is gone. Training and journaling go on.
                os.close(self._events_fd)
                self._events_fd = None
                buf.clear()
                return
            del buf[:written]

    # ------------------------------------------------------------------------------ helpers
    def _update_rates(self, now: float) -> None:
        t_last, step_last = self._last_rate
        if now > t_last:
            self._steps_per_s = max(0.0, (self.step_count - step_last) / (now - t_last))
            busy = self._mon_seconds + self._writer_cpu
            self.overhead = min(1.0, busy / (now - t_last))
        self._mon_seconds = 0.0
        self._writer_cpu = 0.0
        self._last_rate = (now, self.step_count)

    def _track_guard(self, value: float | None) -> None:
        """A running average of the guarded value sets the spike limit (after a warm-up)."""
        if value is None or not math.isfinite(value):
            return
        ema = self._guard_ema
        self._guard_ema = value if ema is None else 0.98 * ema + 0.02 * value
        self._guard_seen += 1
        if self._guard_seen >= 50 and self._guard_ema > 0:
            self._guard_limit = self._guard_ema * self.spike

    def _take_env_params(self) -> None:
        """Start values from a restart (``NEUROTOP_PARAMS``), each validated like any command."""
        raw = os.environ.get(ENV_PARAMS)
        if not raw:
            return
        try:
            values = json.loads(raw)
        except ValueError:
            return
        if isinstance(values, dict):
            for name, value in values.items():
                self._apply_set(Command(action="set", name=str(name), value=value, source="restart"),
                                time.time(), self.step_count)

    def _track_best(self, values: dict) -> None:
        val = values.get("val_loss")
        if isinstance(val, (int, float)) and val == val and (self.info.best_val is None or val < self.info.best_val):
            self.info.best_val = float(val)

    def _status(self, state: str, exit_code: int | None = None, detail: str = "") -> Status:
        return Status(step=self.step_count, t=time.time(), state=state, exit_code=exit_code, detail=detail,
                      steps_per_s=self._steps_per_s, overhead=self.overhead, dropped=self.dropped_for_pipe)

    def _hello(self, device: str) -> Hello:
        specs = [p.spec(k, self.params[k]) for k, p in self.declared.items()]
        return Hello(version=PROTOCOL_VERSION, run_id=self.run_id, name=self.name, pid=os.getpid(),
                     host=self.info.host, started=self.info.started, model=describe_model(self.model),
                     params=specs, argv=list(sys.argv), device=device)

    def _load_or_new_info(self) -> journal.RunInfo:
        try:
            info = journal.RunInfo.load(self.run_dir)
        except (OSError, ValueError, TypeError):
            info = journal.RunInfo(id=self.run_dir.name, name=self.name, command=[sys.executable, *sys.argv])
        info.pid, info.state, info.name = os.getpid(), "running", self.name
        return info

    def _save_info(self) -> None:
        self.info.step = self.step_count
        try:
            self.info.save(self.run_dir)
        except OSError:
            pass  # run.json is a summary; the journal is the truth

    def _excepthook(self, exc_type, exc, tb) -> None:
        self._failure = "".join(traceback.format_exception_only(exc_type, exc)).strip()
        self._previous_excepthook(exc_type, exc, tb)


def describe_model(model: Any) -> list[LayerInfo]:
    """The leaf layers of a torch module with their weight shapes and parameter counts."""
    if model is None or not hasattr(model, "named_modules"):
        return []
    layers = []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            weight = getattr(module, "weight", None)
            shape = list(weight.shape) if weight is not None and hasattr(weight, "shape") else []
            count = sum(p.numel() for p in module.parameters(recurse=False))
            layers.append(LayerInfo(name=name, kind=type(module).__name__, shape=shape, params=count))
    return layers


def _floats(values: dict) -> dict[str, float]:
    out = {}
    for k, v in values.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _fd_from_env(var: str) -> int | None:
    raw = os.environ.get(var)
    if not raw:
        return None
    try:
        fd = int(raw)
        os.fstat(fd)
    except (ValueError, OSError):
        return None
    return fd


def _read_command_stream(fd: int, closing: threading.Event, take: Callable[[list[bytes]], None]) -> None:
    """Read newline-separated commands from ``fd`` until EOF or close, a bounded line at a time."""
    partial = b""
    while not closing.is_set():
        try:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        data = partial + data
        lines = data.split(b"\n")
        partial = lines.pop()
        if len(partial) > 1 << 20:  # a runaway line is dropped, not buffered forever
            partial = b""
        if lines:
            take(lines)


def _remove_stale_socket(path: Path) -> None:
    """A socket left by a dead run is replaced; anything else there is refused, never followed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    import stat as _stat

    if not _stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        raise OSError(f"{path} exists and is not a socket of ours")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        os.unlink(path)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise OSError(f"{path} is in use by a live run")
