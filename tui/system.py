"""System sampling for neurotop: host CPU/RAM, the watched process tree, and GPUs via NVML.

No Textual here: this module is plain Python + psutil + (optionally) pynvml, so it can be
driven from a background thread and tested without a terminal.

No GPU is a normal, first-class state. When NVML is missing (no ``pynvml`` module, no
``libnvidia-ml.so``), fails to initialise, or reports zero devices, ``SystemSample.gpus`` is
empty and ``SystemSample.gpu_status`` says why in one line.

The NVML calls go through a small backend (``NvmlBackend``) shaped like ``pynvml`` itself:
``RealNvml`` forwards to ``pynvml``; ``FakeNvml`` simulates N GPUs for tests and demos
(``NEUROTOP_FAKE_GPU=N`` in the environment makes ``SystemSampler`` use it).

Errors: both backends raise NVML errors carrying an integer ``.value`` (the NVML return code).
When ``pynvml`` is importable, the fake raises real ``pynvml.NVMLError`` subclasses
(``pynvml.NVMLError(code)`` maps the code to e.g. ``NVMLError_NotSupported``); otherwise it
raises ``FakeNvmlError``. The sampler classifies errors by ``.value`` only, so both map the
same way.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import psutil

from neurotop.tui.format import fmt_bytes

__all__ = [
    "GpuSample",
    "HostSample",
    "ProcSample",
    "SystemSample",
    "NvmlBackend",
    "RealNvml",
    "FakeNvml",
    "FakeNvmlError",
    "SystemSampler",
    "default_backend",
    "fmt_bytes",
    "nvml_error",
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_ERROR_NO_PERMISSION",
    "NVML_ERROR_DRIVER_NOT_LOADED",
    "NVML_ERROR_LIBRARY_NOT_FOUND",
    "NVML_ERROR_GPU_IS_LOST",
    "NVML_ERROR_UNKNOWN",
    "FAKE_GPU_ENV",
]

FAKE_GPU_ENV = "NEUROTOP_FAKE_GPU"

# NVML return codes (same values as pynvml.NVML_ERROR_*; these are part of the C API).
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_TEMPERATURE_GPU = 0

_ERROR_TEXT = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}

# Field-level errors that just mean "this GPU does not report that": the field becomes None quietly.
_QUIET_FIELD_ERRORS = frozenset({NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NO_PERMISSION,
                                 NVML_ERROR_FUNCTION_NOT_FOUND})


_PYNVML_UNSET = object()
_pynvml_cache: Any = _PYNVML_UNSET


def _import_pynvml() -> Any | None:
    """The pynvml module, or None when it cannot be imported (tried once, then remembered)."""
    global _pynvml_cache
    if _pynvml_cache is _PYNVML_UNSET:
        try:
            import pynvml  # type: ignore[import-not-found]
        except Exception:  # ImportError, or a broken install: either way, no GPU
            pynvml = None
        _pynvml_cache = pynvml
    return _pynvml_cache


class FakeNvmlError(Exception):
    """Stand-in for ``pynvml.NVMLError`` when pynvml is not importable. Carries ``.value``."""

    def __init__(self, value: int, text: str | None = None):
        super().__init__(value)
        self.value = value
        self._text = text

    def __str__(self) -> str:
        return self._text or _ERROR_TEXT.get(self.value, f"NVML Error with code {self.value}")


class _PynvmlMissing(FakeNvmlError):
    """Raised by ``RealNvml.nvmlInit`` when the ``pynvml`` module itself cannot be imported."""

    def __init__(self) -> None:
        super().__init__(NVML_ERROR_LIBRARY_NOT_FOUND, "pynvml (nvidia-ml-py) not installed")


def nvml_error(code: int) -> Exception:
    """An NVML error for ``code``: a ``pynvml.NVMLError`` subclass if pynvml imports, else FakeNvmlError."""
    pynvml = _import_pynvml()
    if pynvml is not None:
        try:
            return pynvml.NVMLError(code)  # __new__ maps the code to e.g. NVMLError_NotSupported
        except Exception:
            pass
    return FakeNvmlError(code)


def _nvml_exceptions() -> tuple[type[BaseException], ...]:
    pynvml = _import_pynvml()
    if pynvml is not None and isinstance(getattr(pynvml, "NVMLError", None), type):
        return (pynvml.NVMLError, FakeNvmlError)
    return (FakeNvmlError,)


def _error_code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _error_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Snapshot dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU. Any field except ``index`` is None when NVML does not report it."""

    index: int
    name: str | None
    util_pct: float | None       # GPU core utilisation, 0..100
    mem_used: int | None         # bytes
    mem_total: int | None        # bytes
    temp_c: float | None         # degrees C
    power_w: float | None        # watts
    power_limit_w: float | None  # watts (enforced limit)
    procs_mem: int | None        # bytes held on this GPU by the watched process tree (0 when not watching)


@dataclass(frozen=True, slots=True)
class HostSample:
    cpu_pct: float   # whole machine, 0..100
    cpu_count: int   # logical CPUs
    ram_used: int    # bytes (total - available)
    ram_total: int   # bytes


@dataclass(frozen=True, slots=True)
class ProcSample:
    """The watched pid and all its descendants, aggregated."""

    pid: int
    alive: bool      # the watched pid itself exists and is not a zombie
    cpu_pct: float   # summed over the tree; 100 = one full core (like top), can exceed 100
    rss: int         # bytes, summed over the tree
    nprocs: int      # live (non-zombie) processes counted


@dataclass(frozen=True, slots=True)
class SystemSample:
    t: float                       # time.time() when sampled
    host: HostSample
    gpus: tuple[GpuSample, ...]
    gpu_status: str                # "" when GPUs read fine, else a one-line reason
    proc: ProcSample | None        # None when no pid is watched
    ui: ProcSample | None = None   # neurotop's own process: what watching costs (header, diagnostics)


# --------------------------------------------------------------------------------------------
# NVML backends
# --------------------------------------------------------------------------------------------


class NvmlBackend(Protocol):
    """The subset of pynvml that neurotop uses, with pynvml's names and return shapes.

    Utilization has ``.gpu``/``.memory`` (percent); memory info ``.used``/``.total`` (bytes);
    power calls return milliwatts; process lists hold objects with ``.pid`` and
    ``.usedGpuMemory`` (bytes or None). Failures raise errors with an int ``.value``.
    """

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]: ...
    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]: ...


class RealNvml:
    """Forwards to ``pynvml``, imported lazily; a missing module makes ``nvmlInit`` raise LibraryNotFound."""

    def __init__(self) -> None:
        self._nv: Any | None = None

    def _mod(self) -> Any:
        if self._nv is None:
            raise nvml_error(NVML_ERROR_UNINITIALIZED)
        return self._nv

    def nvmlInit(self) -> None:
        nv = _import_pynvml()
        if nv is None:
            raise _PynvmlMissing()
        nv.nvmlInit()
        self._nv = nv

    def nvmlShutdown(self) -> None:
        nv, self._nv = self._nv, None
        if nv is not None:
            nv.nvmlShutdown()

    def nvmlDeviceGetCount(self) -> int:
        return self._mod().nvmlDeviceGetCount()

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return self._mod().nvmlDeviceGetHandleByIndex(index)

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        return self._mod().nvmlDeviceGetName(handle)

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        return self._mod().nvmlDeviceGetUtilizationRates(handle)

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        return self._mod().nvmlDeviceGetMemoryInfo(handle)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        nv = self._mod()
        fn = getattr(nv, "nvmlDeviceGetTemperature", None)
        if fn is None:  # deprecated in pynvml; nvmlDeviceGetTemperatureV is its replacement
            return nv.nvmlDeviceGetTemperatureV(handle, sensor)
        return fn(handle, sensor)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._mod().nvmlDeviceGetPowerUsage(handle)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._mod().nvmlDeviceGetEnforcedPowerLimit(handle)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        return self._mod().nvmlDeviceGetComputeRunningProcesses(handle)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]:
        return self._mod().nvmlDeviceGetGraphicsRunningProcesses(handle)


@dataclass(frozen=True, slots=True)
class _FakeUtil:
    gpu: int
    memory: int


@dataclass(frozen=True, slots=True)
class _FakeMem:
    total: int
    used: int
    free: int


@dataclass(frozen=True, slots=True)
class _FakeProc:
    pid: int
    usedGpuMemory: int | None


@dataclass(frozen=True, slots=True)
class _FakeHandle:
    index: int


_GIB = 1024**3


class FakeNvml:
    """A simulated NVML with ``n`` GPUs, for tests and demos.

    Values are deterministic but vary: each (device, call) has its own step counter, so the
    k-th utilisation reading of GPU 1 is always the same number. Knobs:

    - ``overrides={index: {field: value}}`` pins GpuSample-named fields (``name``, ``util_pct``,
      ``mem_used``, ``mem_total``, ``temp_c``, ``power_w``, ``power_limit_w``); also ``set()``.
    - ``fail(call, index=None, code=NVML_ERROR_NOT_SUPPORTED)`` makes the pynvml-named call raise
      (for one device, or all when index is None); ``init_error=code`` makes ``nvmlInit`` raise.
    - ``procs={index: [(pid, used_bytes), ...]}`` are the compute processes per device and
      ``graphics_procs`` likewise; ``add_proc()`` appends one.

    Errors are real ``pynvml.NVMLError`` subclasses when pynvml imports (see ``nvml_error``).
    """

    NAME = "NVIDIA A100-SXM4-80GB"
    MEM_TOTAL = 80 * _GIB
    POWER_LIMIT_MW = 400_000

    def __init__(
        self,
        n: int = 2,
        *,
        overrides: dict[int, dict[str, Any]] | None = None,
        procs: dict[int, list[tuple[int, int | None]]] | None = None,
        graphics_procs: dict[int, list[tuple[int, int | None]]] | None = None,
        init_error: int | None = None,
    ) -> None:
        self.n = n
        self.overrides: dict[int, dict[str, Any]] = {i: dict(v) for i, v in (overrides or {}).items()}
        self.procs: dict[int, list[tuple[int, int | None]]] = {i: list(v) for i, v in (procs or {}).items()}
        self.graphics_procs: dict[int, list[tuple[int, int | None]]] = {
            i: list(v) for i, v in (graphics_procs or {}).items()}
        self.init_error = init_error
        self.failures: dict[tuple[str, int | None], int] = {}
        self.initialized = False
        self.init_calls = 0
        self.shutdown_calls = 0
        self._steps: dict[tuple[int, str], int] = {}

    # -- configuration ------------------------------------------------------------------------

    def set(self, index: int, **fields: Any) -> None:
        self.overrides.setdefault(index, {}).update(fields)

    def fail(self, call: str, index: int | None = None, code: int = NVML_ERROR_NOT_SUPPORTED) -> None:
        if not hasattr(NvmlBackend, call):
            raise ValueError(f"not an NVML call this backend has: {call!r}")
        self.failures[(call, index)] = code

    def clear_failures(self) -> None:
        self.failures.clear()

    def add_proc(self, index: int, pid: int, used_memory: int | None, *, graphics: bool = False) -> None:
        (self.graphics_procs if graphics else self.procs).setdefault(index, []).append((pid, used_memory))

    # -- helpers ------------------------------------------------------------------------------

    def _check(self, call: str, handle: Any = None) -> int:
        if call not in ("nvmlInit",) and not self.initialized:
            raise nvml_error(NVML_ERROR_UNINITIALIZED)
        index = handle.index if isinstance(handle, _FakeHandle) else None
        code = self.failures.get((call, index), self.failures.get((call, None)))
        if code is not None:
            raise nvml_error(code)
        return index if index is not None else -1

    def _step(self, index: int, what: str) -> int:
        k = self._steps.get((index, what), 0)
        self._steps[(index, what)] = k + 1
        return k

    def _override(self, index: int, key: str) -> Any:
        return self.overrides.get(index, {}).get(key)

    def _wave(self, index: int, what: str, lo: float, hi: float, speed: float) -> float:
        k = self._step(index, what)
        x = 0.5 + 0.35 * math.sin(k * speed + index * 1.7) + 0.15 * math.sin(k * speed * 3.1 + index)
        return lo + (hi - lo) * min(1.0, max(0.0, x))

    def _procs_used(self, index: int) -> int:
        best: dict[int, int] = {}
        for pid, used in self.procs.get(index, []) + self.graphics_procs.get(index, []):
            best[pid] = max(best.get(pid, 0), used or 0)
        return sum(best.values())

    # -- NvmlBackend --------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.init_calls += 1
        self._check("nvmlInit")
        if self.init_error is not None:
            raise nvml_error(self.init_error)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self._check("nvmlShutdown")
        self.shutdown_calls += 1
        self.initialized = False

    def nvmlDeviceGetCount(self) -> int:
        self._check("nvmlDeviceGetCount")
        return self.n

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._check("nvmlDeviceGetHandleByIndex", _FakeHandle(index))
        if not 0 <= index < self.n:
            raise nvml_error(2)  # NVML_ERROR_INVALID_ARGUMENT
        return _FakeHandle(index)

    def nvmlDeviceGetName(self, handle: Any) -> str:
        i = self._check("nvmlDeviceGetName", handle)
        name = self._override(i, "name")
        return self.NAME if name is None else name

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> _FakeUtil:
        i = self._check("nvmlDeviceGetUtilizationRates", handle)
        util = self._override(i, "util_pct")
        if util is None:
            util = self._wave(i, "util", 35, 99, 0.45)
        return _FakeUtil(gpu=int(round(util)), memory=int(round(util * 0.6)))

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> _FakeMem:
        i = self._check("nvmlDeviceGetMemoryInfo", handle)
        total = self._override(i, "mem_total")
        total = self.MEM_TOTAL if total is None else int(total)
        used = self._override(i, "mem_used")
        if used is None:
            base = int(self._wave(i, "mem", 0.02, 0.08, 0.2) * total)  # driver/context overhead
            used = min(total, base + self._procs_used(i))
        used = int(used)
        return _FakeMem(total=total, used=used, free=max(0, total - used))

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        i = self._check("nvmlDeviceGetTemperature", handle)
        temp = self._override(i, "temp_c")
        return int(round(self._wave(i, "temp", 38, 79, 0.12) if temp is None else temp))

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        i = self._check("nvmlDeviceGetPowerUsage", handle)
        watts = self._override(i, "power_w")
        if watts is None:
            watts = self._wave(i, "power", 60, 0.95 * self.POWER_LIMIT_MW / 1000, 0.45)
        return int(round(watts * 1000))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        i = self._check("nvmlDeviceGetEnforcedPowerLimit", handle)
        watts = self._override(i, "power_limit_w")
        return self.POWER_LIMIT_MW if watts is None else int(round(watts * 1000))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[_FakeProc]:
        i = self._check("nvmlDeviceGetComputeRunningProcesses", handle)
        return [_FakeProc(pid, used) for pid, used in self.procs.get(i, [])]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[_FakeProc]:
        i = self._check("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return [_FakeProc(pid, used) for pid, used in self.graphics_procs.get(i, [])]


def default_backend() -> NvmlBackend:
    """``FakeNvml(N)`` when ``NEUROTOP_FAKE_GPU=N`` (an int >= 0) is set, else ``RealNvml()``."""
    raw = os.environ.get(FAKE_GPU_ENV, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = -1
        if n >= 0:
            return FakeNvml(n)
    return RealNvml()


# --------------------------------------------------------------------------------------------
# The sampler
# --------------------------------------------------------------------------------------------


def _init_failure_message(exc: BaseException) -> str:
    if isinstance(exc, _PynvmlMissing):
        return "no GPU: pynvml not installed (CPU only)"
    code = _error_code(exc)
    if code == NVML_ERROR_LIBRARY_NOT_FOUND:
        return "no GPU: NVML not found (CPU only)"
    if code == NVML_ERROR_DRIVER_NOT_LOADED:
        return "no GPU: NVIDIA driver not loaded (CPU only)"
    return f"no GPU: NVML init failed: {_error_text(exc)}"


def _host_cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds across all CPUs, the way psutil.cpu_percent counts them."""
    t = psutil.cpu_times()
    total = sum(t)
    # On Linux guest time is already included in user/nice.
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    idle = t.idle + getattr(t, "iowait", 0.0)
    return total - idle, total


class SystemSampler:
    """Takes ``SystemSample`` snapshots; ``sample()`` is cheap enough to call every second.

    Thread-safe: ``sample()`` may run in a background thread while ``watch()``/``close()`` are
    called from the UI thread. NVML is initialised lazily on the first ``sample()``; when that
    fails the reason becomes ``gpu_status`` and init is retried at most once per ``retry_s``.
    """

    def __init__(
        self,
        pid: int | None = None,
        backend: NvmlBackend | None = None,
        *,
        retry_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.RLock()
        self._nvml: NvmlBackend = backend if backend is not None else default_backend()
        self._demo = backend is None and isinstance(self._nvml, FakeNvml)
        self._retry_s = retry_s
        self._clock = clock
        self._nvml_ok = False
        self._nvml_tried_at: float | None = None
        self._gpu_status = "no GPU: NVML not initialised yet"
        self._handles: list[tuple[int, Any]] = []
        self._handle_errors: list[str] = []
        self._closed = False
        self._pid: int | None = None
        self._procs: dict[int, psutil.Process] = {}
        self._cpu_last = _host_cpu_times()
        self._cpu_count = psutil.cpu_count(logical=True) or 1
        self._me = psutil.Process(os.getpid())
        self._me.cpu_percent(None)  # primed: the first sample has a delta
        self.watch(pid)

    # -- public -------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def backend(self) -> NvmlBackend:
        return self._nvml

    def watch(self, pid: int | None) -> None:
        """Watch ``pid`` (and its descendants) from now on; None stops watching."""
        with self._lock:
            if pid == self._pid:
                return
            self._pid = pid
            self._procs = {}
            if pid is not None:
                self._proc_for(pid)  # primes cpu_percent so the next sample has a delta
                if self._demo and isinstance(self._nvml, FakeNvml) and self._nvml.n > 0:
                    self._nvml.procs[0] = [(pid, 6 * _GIB + 512 * 1024**2)]

    def sample(self) -> SystemSample:
        with self._lock:
            now = time.time()
            host = self._sample_host()
            proc, tree = self._sample_proc()
            gpus, status = self._sample_gpus(tree)
            return SystemSample(t=now, host=host, gpus=gpus, gpu_status=status, proc=proc, ui=self._sample_ui())

    def close(self) -> None:
        """Shut NVML down (if it was up). Idempotent; ``sample()`` afterwards reports no GPU."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._nvml_ok:
                self._nvml_ok = False
                self._handles = []
                try:
                    self._nvml.nvmlShutdown()
                except _nvml_exceptions():
                    pass
            self._gpu_status = "no GPU: sampler closed"

    def __enter__(self) -> SystemSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sample_ui(self) -> ProcSample | None:
        try:
            with self._me.oneshot():
                return ProcSample(pid=self._me.pid, alive=True, cpu_pct=self._me.cpu_percent(None),
                                  rss=self._me.memory_info().rss, nprocs=1)
        except psutil.Error:
            return None

    # -- host ---------------------------------------------------------------------------------

    def _sample_host(self) -> HostSample:
        busy, total = _host_cpu_times()
        last_busy, last_total = self._cpu_last
        self._cpu_last = (busy, total)
        d_total = total - last_total
        pct = 0.0 if d_total <= 0 else max(0.0, min(100.0, 100.0 * (busy - last_busy) / d_total))
        vm = psutil.virtual_memory()
        return HostSample(cpu_pct=round(pct, 1), cpu_count=self._cpu_count,
                          ram_used=int(vm.total - vm.available), ram_total=int(vm.total))

    # -- process tree -------------------------------------------------------------------------

    def _proc_for(self, pid: int, fresh: psutil.Process | None = None) -> psutil.Process | None:
        """The cached Process for pid (so cpu_percent deltas work), replaced if the pid was reused."""
        p = self._procs.get(pid)
        if p is not None:
            try:
                if p.is_running():  # also False when the pid now belongs to a different process
                    return p
            except psutil.Error:
                pass
        try:
            p = fresh if fresh is not None else psutil.Process(pid)
            p.cpu_percent(None)  # first call returns 0 and starts the delta
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._procs.pop(pid, None)
            return None
        self._procs[pid] = p
        return p

    def _sample_proc(self) -> tuple[ProcSample | None, frozenset[int]]:
        pid = self._pid
        if pid is None:
            return None, frozenset()
        root = self._proc_for(pid)
        alive = False
        members: list[psutil.Process] = []
        if root is not None:
            try:
                alive = root.status() != psutil.STATUS_ZOMBIE
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                alive = False
                try:
                    alive = root.is_running()
                except psutil.Error:
                    pass
            if alive:
                members.append(root)
                try:
                    children = root.children(recursive=True)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    children = []
                for child in children:
                    p = self._proc_for(child.pid, child)
                    if p is not None:
                        members.append(p)
        cpu = 0.0
        rss = 0
        seen: set[int] = set()
        for p in members:
            try:
                with p.oneshot():
                    if p.status() == psutil.STATUS_ZOMBIE:
                        continue
                    c = p.cpu_percent(None)
                    r = p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            except psutil.AccessDenied:
                seen.add(p.pid)  # it exists; we just cannot read it
                continue
            seen.add(p.pid)
            cpu += c
            rss += r
        # Forget processes that left the tree so a reused pid starts fresh.
        for stale in [q for q in self._procs if q not in seen and q != pid]:
            del self._procs[stale]
        if not alive:
            seen.discard(pid)
        proc = ProcSample(pid=pid, alive=alive, cpu_pct=round(cpu, 1), rss=int(rss), nprocs=len(seen))
        return proc, frozenset(seen | ({pid} if alive else set()))

    # -- GPUs ---------------------------------------------------------------------------------

    def _ensure_nvml(self) -> bool:
        if self._nvml_ok:
            return True
        if self._closed:
            return False
        now = self._clock()
        if self._nvml_tried_at is not None and now - self._nvml_tried_at < self._retry_s:
            return False
        self._nvml_tried_at = now
        errors = _nvml_exceptions()
        try:
            self._nvml.nvmlInit()
        except errors as exc:
            self._gpu_status = _init_failure_message(exc)
            return False
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
        except errors as exc:
            self._gpu_status = f"no GPU: NVML device count failed: {_error_text(exc)}"
            self._shutdown_quietly()
            return False
        if count <= 0:
            self._gpu_status = "no GPU: NVML found but 0 devices"
            self._shutdown_quietly()
            return False
        handles: list[tuple[int, Any]] = []
        handle_errors: list[str] = []
        for i in range(count):
            try:
                handles.append((i, self._nvml.nvmlDeviceGetHandleByIndex(i)))
            except errors as exc:
                handle_errors.append(f"GPU {i}: {_error_text(exc)}")
        if not handles:
            self._gpu_status = "no GPU: " + "; ".join(handle_errors)
            self._shutdown_quietly()
            return False
        self._handles, self._handle_errors = handles, handle_errors
        self._nvml_ok = True
        self._gpu_status = ""
        return True

    def _shutdown_quietly(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except _nvml_exceptions():
            pass

    def _sample_gpus(self, tree: frozenset[int]) -> tuple[tuple[GpuSample, ...], str]:
        if not self._ensure_nvml():
            return (), self._gpu_status
        nv = self._nvml
        errors = _nvml_exceptions()
        problems: list[str] = list(self._handle_errors)

        def read(i: int, fn: Callable[..., Any], *args: Any) -> Any:
            try:
                return fn(*args)
            except errors as exc:
                if _error_code(exc) not in _QUIET_FIELD_ERRORS:
                    problems.append(f"GPU {i}: {_error_text(exc)}")
                return None

        out: list[GpuSample] = []
        for i, h in self._handles:
            name = read(i, nv.nvmlDeviceGetName, h)
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            util = read(i, nv.nvmlDeviceGetUtilizationRates, h)
            mem = read(i, nv.nvmlDeviceGetMemoryInfo, h)
            temp = read(i, nv.nvmlDeviceGetTemperature, h, NVML_TEMPERATURE_GPU)
            power = read(i, nv.nvmlDeviceGetPowerUsage, h)
            limit = read(i, nv.nvmlDeviceGetEnforcedPowerLimit, h)
            compute = read(i, nv.nvmlDeviceGetComputeRunningProcesses, h)
            graphics = read(i, nv.nvmlDeviceGetGraphicsRunningProcesses, h)
            procs_mem: int | None
            if compute is None and graphics is None:
                procs_mem = None
            else:
                # A process with both compute and graphics contexts is listed twice with its
                # whole usage each time: take the max per pid, then sum over the watched tree.
                per_pid: dict[int, int] = {}
                for p in (compute or []) + (graphics or []):
                    pid = getattr(p, "pid", None)
                    if pid in tree:
                        used = getattr(p, "usedGpuMemory", None) or 0
                        per_pid[pid] = max(per_pid.get(pid, 0), int(used))
                procs_mem = sum(per_pid.values())
            out.append(GpuSample(
                index=i,
                name=name,
                util_pct=None if util is None else float(util.gpu),
                mem_used=None if mem is None else int(mem.used),
                mem_total=None if mem is None else int(mem.total),
                temp_c=None if temp is None else float(temp),
                power_w=None if power is None else power / 1000.0,
                power_limit_w=None if limit is None else limit / 1000.0,
                procs_mem=procs_mem,
            ))
        return tuple(out), problems[0] if problems else ""
