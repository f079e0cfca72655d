"""Monitor: the SDK a training script uses. Declare, step, read params, log.

    mon = Monitor(model, params={"lr": Param(1e-3, min=1e-6, max=1.0, log=True)})
    while mon.step():                     # applies pending commands, honours pause and stop
        opt.param_groups[0]["lr"] = mon.params["lr"]
        mon.log(loss=loss.item())

A façade over four parts, each in its own module: the ``Writer`` (a bounded queue and the thread
that journals it and feeds the pipe; DESIGN rule 2), the ``ControlServer`` (commands from the
control pipe and ``control.sock``), the ``Guard`` (when the watched value diverged, and whether a
resumed run sits far above where it was) and the ``Checkpointer``. Commands are validated here,
applied at the next step boundary, in the training thread, and journaled with their source.
``Monitor(enabled=False)`` is a ``NullMonitor``: the same calls, doing nothing.
"""

from __future__ import annotations

import atexit
import collections
import json
import math
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from neurotop.trainer import journal
from neurotop.trainer.checkpoint import Checkpointer, Restored
from neurotop.trainer.control import ControlServer
from neurotop.trainer.guard import Guard
from neurotop.trainer.params import Param, Refused
from neurotop.trainer.protocol import (
    ENV_CONTROL_FD,
    ENV_EVENTS_FD,
    ENV_PARAMS,
    ENV_RESUME,
    ENV_RUN_DIR,
    ENV_SUPERVISED,
    PROTOCOL_VERSION,
    Command,
    Event,
    Hello,
    LayerInfo,
    Metric,
    ParamChange,
    Status,
)
from neurotop.trainer.writer import Writer

#: Steps after a parameter change or a restore before the run counts as ``steady`` again.
SETTLE_STEPS = 50


class Monitor:
    """Connects a training loop to neurotop. See the module docstring for the five-line use.

    ``run_dir``: where the journal goes; by default the one ``neurotop`` gave through the
    environment, else a new one under ``$NEUROTOP_RUNS`` or ``./runs``. ``enabled=False`` gives a
    ``NullMonitor``: every call a no-op that costs nothing. ``save(path)`` is called on a
    checkpoint command; by default the model's (and ``optimizer``'s) state dicts are saved with
    ``torch.save``, and ``load(path)`` (default: ``torch.load(weights_only=True)`` into the same)
    restores them on a roll-back or when ``neurotop`` restarts the run from a checkpoint. A roll
    back also restores the parameter values that were in force when the checkpoint was taken.

    ``guard``: when ``guard_key`` turns NaN/Inf, or stays for ``patience`` values in a row above
    ``spike`` × its running median and many spreads above it (``neurotop.trainer.guard``), the run pauses
    at the next step and the UI offers to roll back, halve the learning rate or go on. Without the
    guard the same is flagged (a warning event, and a ``recovered`` event when it is back in line)
    and training carries on. Either way a run that resumes far above its earlier level is warned of.
    """

    def __new__(cls, *args: Any, enabled: bool = True, **kwargs: Any) -> "Monitor":
        return super().__new__(cls if enabled or cls is not Monitor else NullMonitor)

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
        patience: int = 3,
        run_dir: str | os.PathLike | None = None,
        runs_dir: str | os.PathLike | None = None,
        enabled: bool = True,
        device: str = "",
    ) -> None:
        self.enabled = True
        self.declared: dict[str, Param] = dict(params or {})
        for key, p in self.declared.items():
            p.name = key
        self.params: dict[str, Any] = {k: p.default for k, p in self.declared.items()}
        self.step_count = 0
        self.epoch: int | None = None
        self.paused = False
        self.stop_requested = False
        self.guard, self.guard_key = guard, guard_key
        self.spike_guard = Guard(spike, patience)
        self._diverged: tuple[int, float] | None = None  # set by log(), handled at the next step()
        self._changed_at = 0  # the step of the last parameter change or restore
        self.name = name or Path(sys.argv[0]).stem or "run"
        env_dir = os.environ.get(ENV_RUN_DIR)
        if run_dir is not None:
            self.run_dir = journal.make_private_dir(Path(run_dir))
        elif env_dir:
            self.run_dir = journal.make_private_dir(Path(env_dir))
        else:
            self.run_dir = journal.create_run_dir(journal.runs_root(runs_dir), self.name)
        self.run_id = self.run_dir.name
        self._info_lock = threading.Lock()  # run.json is written from the training and writer threads
        self.info = self._load_or_new_info()
        self.checkpoints = Checkpointer(self.run_dir, model, optimizer, save, load)
        self._commands: collections.deque[Command] = collections.deque()
        self._command_ready = threading.Event()
        self._closed = False
        self._failure: str | None = None
        self._last_rate = (time.perf_counter(), 0)
        self._steps_per_s = 0.0
        self._mon_seconds = 0.0  # time spent in step()/probes in the training thread
        self._snapshots_reported = 0
        self.overhead = 0.0
        journal_fd = os.open(self.run_dir / journal.JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.writer = Writer(journal_fd, _fd_from_env(ENV_EVENTS_FD), self._observe, self._heartbeat)
        self.writer.put(self._hello(device))
        resume = os.environ.get(ENV_RESUME)
        if resume:
            self._restore(Path(resume), source="restart")
        self._take_env_params()  # after the restore: the changes are made at the step the run resumes from
        # Under a supervisor (neurotop run) the supervisor owns control.sock and passes commands on.
        self.control = ControlServer(self.run_dir, _fd_from_env(ENV_CONTROL_FD), self.submit,
                                     lambda text, source: self.note(text, kind="warning", source=source),
                                     serve_socket=not os.environ.get(ENV_SUPERVISED))
        self._update_info(socket=self.control.socket_path)
        self.writer.start()
        self.control.start()
        _hooks.add(self)

    # ----------------------------------------------------------------- the training loop's calls
    def step(self, step: int | None = None) -> bool:
        """Mark a step boundary: apply pending commands, wait while paused.

        Returns False once a stop was asked for, so ``while mon.step():`` ends cleanly.
        """
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
        at = self.step_count if step is None else step
        self.writer.log(at, time.time(), self.epoch, values)
        watched = values.get(self.guard_key)
        guard = self.spike_guard
        if watched is not None and not (watched < guard.limit and guard.calm):  # NaN fails every comparison
            self._judge(at, watched)

    def note(self, text: str, kind: str = "note", source: str = "script") -> None:
        self.writer.put(Event(step=self.step_count, t=time.time(), kind=kind, text=text, source=source))
        if kind == "note":  # `neurotop ls` counts them
            with self._info_lock:
                self.info.notes += 1

    def emit(self, message: Any) -> None:
        """Send a protocol message (activations, samples) built elsewhere, e.g. by probes. Dropped
        (and counted) while the writer is a full queue behind."""
        self.writer.offer(message)

    def add_monitoring_time(self, seconds: float) -> None:
        """Probes report their training-thread time here so the cost meter includes it."""
        self._mon_seconds += seconds

    def submit(self, cmd: Command) -> None:
        """Queue a command as if it came from a UI (thread-safe); applied at the next step."""
        self._commands.append(cmd)
        self._command_ready.set()

    def checkpoint(self, source: str = "script", name: str | None = None) -> Path | None:
        """Save now, atomically (temporary file, then rename), and journal where it went.

        ``name`` overwrites one file (e.g. ``"last-good"`` for a rolling checkpoint)."""
        try:
            path = self.checkpoints.save(self.step_count, self.params, self.spike_guard.level(), name)
        except Exception as err:  # a failed save must not cost the run
            self.note(f"checkpoint failed: {err}", kind="warning", source=source)
            return None
        self.writer.put(Event(step=self.step_count, t=time.time(), kind="checkpoint", path=str(path), source=source))
        return path

    @property
    def model(self) -> Any:
        """The model whose state a checkpoint saves and a roll back restores."""
        return self.checkpoints.model

    @model.setter
    def model(self, model: Any) -> None:
        self.checkpoints.model = model

    @property
    def optimizer(self) -> Any:
        """The optimizer whose state a checkpoint saves and a roll back restores; a script that
        makes a new one (e.g. on a parameter change) sets it here."""
        return self.checkpoints.optimizer

    @optimizer.setter
    def optimizer(self, optimizer: Any) -> None:
        self.checkpoints.optimizer = optimizer

    @property
    def steady(self) -> bool:
        """The guarded value is in line, and no parameter changed (nor a checkpoint was restored)
        in the last ``SETTLE_STEPS`` steps: a good moment for a rolling "last good" checkpoint."""
        guard = self.spike_guard
        return guard.calm and self.step_count - self._changed_at >= SETTLE_STEPS

    @property
    def last_checkpoint(self) -> Path | None:
        return self.checkpoints.last

    @property
    def journal_error(self) -> str:
        """Why the journal cannot be written just now ("" when it can)."""
        return self.writer.journal_error

    def close(self, state: str | None = None, exit_code: int | None = None, detail: str = "") -> None:
        """Write the end record, flush everything, stop the threads. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _hooks.remove(self)
        if state is None:
            state = "failed" if self._failure else ("stopped" if self.stop_requested else "finished")
            detail = detail or (self._failure or "")
            if exit_code is None and self._failure:
                exit_code = 1
        self.writer.close(lambda: self._status(state, exit_code=exit_code, detail=detail))
        self.control.close()
        os.close(self.writer.journal_fd)
        self._update_info(state=state, exit_code=exit_code, ended=time.time())

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            self.fail(exc_type, exc)
        self.close()

    def fail(self, exc_type, exc) -> None:
        """Record an exception as the reason the run failed (the end record says it)."""
        self._failure = "".join(traceback.format_exception_only(exc_type, exc)).strip()

    # ----------------------------------------------------------------------------- the guard
    def _judge(self, step: int, value: Any) -> None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            return
        verdict = self.spike_guard.check(value)
        if verdict == "diverged":
            self._diverged = (step, value)
        elif verdict == "recovered":
            self.writer.put(Event(step=step, t=time.time(), kind="recovered", source="guard",
                                  text=f"{self.guard_key} back in line at step {step:,}"))

    def _on_divergence(self) -> None:
        """Reported once per episode; with the guard on, pause before the next optimizer step."""
        step, value = self._diverged
        self._diverged = None
        if math.isfinite(value):
            text = f"{self.guard_key} jumped to {value:.4g} at step {step:,} ({self.spike_guard.patience} in a row)"
        else:
            text = f"{self.guard_key} is not finite at step {step:,}"
        if self.guard and not self.paused:
            self.paused = True
            self.writer.put(Event(step=step, t=time.time(), kind="diverged", source="guard",
                                  text=f"{text}: paused by the guard", path=str(self.last_checkpoint or "")))
            self.writer.put(self._status("paused"))
        else:
            self.writer.put(Event(step=step, t=time.time(), kind="warning", source="guard", text=text))

    def _observe(self, metric: Metric) -> None:
        """The writer thread's look at each metric it writes: the best val_loss, the guard's window."""
        values = metric.values
        val = values.get("val_loss")
        if val is not None and val == val:
            with self._info_lock:
                if self.info.best_val is None or val < self.info.best_val:
                    self.info.best_val = val
        warning = self.spike_guard.observe(values.get(self.guard_key))
        if warning:
            self.writer.put(Event(step=metric.step, t=time.time(), kind="warning", source="guard",
                                  text=f"{self.guard_key} {warning}"))

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
            if not want and self.spike_guard.tripped:  # a person looked at it and chose to go on
                self.spike_guard.rebaseline("after resuming")
            if self.paused != want:
                self.paused = want
                self.writer.put(Event(step=step, t=now, kind=cmd.action, source=cmd.source))
                self.writer.put(self._status("paused" if want else "running"))
        elif cmd.action == "checkpoint":
            self.checkpoint(source=cmd.source)
        elif cmd.action == "rollback":
            if self.last_checkpoint is None:
                self.note("no checkpoint to roll back to", kind="warning", source=cmd.source)
            else:
                self._restore(self.last_checkpoint, source=cmd.source)
        elif cmd.action == "stop":
            self.stop_requested = True
            self.writer.put(Event(step=step, t=now, kind="stop", source=cmd.source, text="stop asked"))
        elif cmd.action == "note":
            self.note(cmd.text[:2000], source=cmd.source)

    def _apply_set(self, cmd: Command, now: float, step: int) -> bool:
        param = self.declared.get(cmd.name)
        old = self.params.get(cmd.name)
        if param is None:
            self.writer.put(ParamChange(step=step, t=now, name=cmd.name, new=cmd.value, ok=False,
                                        reason="no such parameter", source=cmd.source))
            return False
        try:
            value = param.validate(cmd.value)
        except Refused as err:
            self.writer.put(ParamChange(step=step, t=now, name=cmd.name, new=cmd.value, old=old, ok=False,
                                        reason=str(err), source=cmd.source))
            return False
        if param.on_change is not None:
            try:
                param.on_change(value, old)
            except Exception as err:  # the script said no: nothing is applied
                self.writer.put(ParamChange(step=step, t=now, name=cmd.name, new=value, old=old, ok=False,
                                            reason=f"on_change failed: {err}", source=cmd.source))
                return False
        self.params[cmd.name] = value
        self._changed_at = step
        self.writer.put(ParamChange(step=step, t=now, name=cmd.name, new=value, old=old, source=cmd.source))
        return True

    def _restore(self, path: Path, source: str) -> bool:
        """Load a checkpoint. On a roll back the parameter values in force when it was taken come
        back too (each journaled as a change); the guard starts a new window either way."""
        try:
            restored = self.checkpoints.restore(path)
        except Exception as err:
            self.note(f"could not restore {path.name}: {err}", kind="warning", source=source)
            return False
        text = f"restored {path.name}"
        self._changed_at = self.step_count
        if source == "restart":  # the restart's own values (NEUROTOP_PARAMS) stand
            if restored.step is not None:
                self.step_count = restored.step
                self._last_rate = (time.perf_counter(), restored.step)  # the speed counts this run's steps only
            self.spike_guard.expect(restored.level, "after the restart")
        else:
            changed = self._restore_params(restored, source)
            if changed:
                text += "; back to the values then: " + ", ".join(changed)
            self.spike_guard.rebaseline("after the roll back")
        self.writer.put(Event(step=self.step_count, t=time.time(), kind="restore", path=str(path),
                              source=source, text=text))
        return True

    def _restore_params(self, restored: Restored, source: str) -> list[str]:
        """Apply the checkpoint's parameter values that differ from the current ones."""
        changed = []
        for name, value in restored.params.items():
            old = self.params.get(name)
            if name in self.declared and value != old and self._apply_set(
                    Command(action="set", name=name, value=value, source=source), time.time(), self.step_count):
                changed.append(f"{name} {old} → {self.params[name]}")
        return changed

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

    # ------------------------------------------------------------------ writer-thread duties
    def _heartbeat(self) -> None:
        """About once a second, from the writer thread: rates, a status line, run.json."""
        now = time.perf_counter()
        t_last, step_last = self._last_rate
        if now > t_last:
            self._steps_per_s = max(0.0, (self.step_count - step_last) / (now - t_last))
            self.overhead = min(1.0, (self._mon_seconds + self.writer.take_cpu()) / (now - t_last))
        self._mon_seconds = 0.0
        self._last_rate = (now, self.step_count)
        self.writer.put(self._status("paused" if self.paused else "running"))
        dropped = self.writer.snapshots_dropped
        if dropped > self._snapshots_reported:
            self.writer.put(Event(step=self.step_count, t=time.time(), kind="warning", source="monitor",
                                  text=f"{dropped - self._snapshots_reported:,} snapshot(s) dropped: "
                                       "the writer fell behind the loop"))
            self._snapshots_reported = dropped
        self._update_info()

    def _status(self, state: str, exit_code: int | None = None, detail: str = "") -> Status:
        return Status(step=self.step_count, t=time.time(), state=state, exit_code=exit_code, detail=detail,
                      steps_per_s=self._steps_per_s, overhead=self.overhead,
                      dropped=self.writer.dropped_for_pipe, coalesced=self.writer.coalesced)

    def _hello(self, device: str) -> Hello:
        specs = [p.spec(k, self.params[k]) for k, p in self.declared.items()]
        return Hello(version=PROTOCOL_VERSION, run_id=self.run_id, name=self.name, pid=os.getpid(),
                     host=self.info.host, started=self.info.started, model=describe_model(self.model),
                     params=specs, argv=list(sys.argv), device=device)

    # ---------------------------------------------------------------------------- run.json
    def _load_or_new_info(self) -> journal.RunInfo:
        try:
            info = journal.RunInfo.load(self.run_dir)
        except (OSError, ValueError, TypeError):
            info = journal.RunInfo(id=self.run_dir.name, name=self.name, command=[sys.executable, *sys.argv])
        info.pid, info.state, info.name = os.getpid(), "running", self.name
        return info

    def _update_info(self, **fields: Any) -> None:
        """Change ``run.json``'s fields and save it, under one lock, with the current step."""
        with self._info_lock:
            for key, value in fields.items():
                setattr(self.info, key, value)
            self.info.step = self.step_count
            try:
                self.info.save(self.run_dir)
            except OSError:
                pass  # run.json is a summary; the journal is the truth


class NullMonitor(Monitor):
    """What ``Monitor(enabled=False)`` gives: every call works and does nothing (no run directory,
    no threads, no hooks). ``params`` hold the declared defaults; ``step()`` counts."""

    model: Any = None  # plain attributes here: nothing is ever saved
    optimizer: Any = None

    def __init__(self, model: Any = None, params: dict[str, Param] | None = None, **_: Any) -> None:
        self.enabled = False
        self.declared = dict(params or {})
        self.params = {k: p.default for k, p in self.declared.items()}
        self.step_count = 0
        self.epoch = None
        self.paused = self.stop_requested = False
        self.model, self.run_dir, self.overhead = model, None, 0.0

    def step(self, step: int | None = None) -> bool:
        self.step_count = self.step_count + 1 if step is None else step
        return True

    def log(self, step: int | None = None, **values: float) -> None:
        pass

    def note(self, text: str, kind: str = "note", source: str = "script") -> None:
        pass

    def emit(self, message: Any) -> None:
        pass

    def add_monitoring_time(self, seconds: float) -> None:
        pass

    def submit(self, cmd: Command) -> None:
        pass

    def checkpoint(self, source: str = "script", name: str | None = None) -> Path | None:
        return None

    @property
    def steady(self) -> bool:
        return True

    @property
    def last_checkpoint(self) -> Path | None:
        return None

    @property
    def journal_error(self) -> str:
        return ""

    def close(self, state: str | None = None, exit_code: int | None = None, detail: str = "") -> None:
        pass

    def fail(self, exc_type, exc) -> None:
        pass


class _ProcessHooks:
    """``sys.excepthook`` and ``atexit``, installed once for all the live Monitors of a process
    and removed when the last one closes (a framework bridge makes a new Monitor per fit)."""

    def __init__(self) -> None:
        self.live: list[Monitor] = []
        self._previous: Callable | None = None
        self._lock = threading.Lock()

    def add(self, monitor: Monitor) -> None:
        with self._lock:
            if not self.live:
                self._previous = sys.excepthook
                sys.excepthook = self._excepthook
                atexit.register(self._close_all)
            self.live.append(monitor)

    def remove(self, monitor: Monitor) -> None:
        with self._lock:
            if monitor not in self.live:
                return
            self.live.remove(monitor)
            if not self.live:
                if sys.excepthook == self._excepthook:
                    sys.excepthook = self._previous
                atexit.unregister(self._close_all)
                self._previous = None

    def _excepthook(self, exc_type, exc, tb) -> None:
        previous = self._previous or sys.__excepthook__
        for monitor in list(self.live):
            monitor.fail(exc_type, exc)
        previous(exc_type, exc, tb)

    def _close_all(self) -> None:
        for monitor in list(self.live):
            monitor.close()


_hooks = _ProcessHooks()
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
