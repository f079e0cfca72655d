"""Tests for tui/system.py: host/process sampling with real processes, NVML via the fake backend,
and the real no-GPU path on a machine without NVML."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from tests.conftest import wait_for
from neurotop.tui import system
from neurotop.tui.system import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_UNKNOWN,
    FakeNvml,
    FakeNvmlError,
    GpuSample,
    RealNvml,
    SystemSample,
    SystemSampler,
    default_backend,
    fmt_bytes,
)

MiB = 1024**2
GiB = 1024**3


def _nvml_available() -> bool:
    try:
        import pynvml
    except ImportError:
        return False
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


HAVE_NVML = _nvml_available()

# A child that obeys one command per stdin line, answering on stdout.
CHILD = textwrap.dedent(r"""
    import subprocess, sys, threading, time
    hold = []
    kids = []
    def spin():
        end = time.time() + 30
        while time.time() < end:
            pass
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "alloc":            # touch every page so RSS really grows
            hold.append(b"\x01" * (int(cmd[1]) * 1024 * 1024))
            print("ok", flush=True)
        elif cmd[0] == "spin":
            threading.Thread(target=spin, daemon=True).start()
            print("ok", flush=True)
        elif cmd[0] == "fork":           # a grandchild holding some memory
            k = subprocess.Popen([sys.executable, "-c",
                "import sys, time; b = b'\x01' * (%s << 20); print('ok', flush=True); sys.stdin.read()"
                % cmd[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            k.stdout.readline()
            kids.append(k)
            print(k.pid, flush=True)
        elif cmd[0] == "exit":
            sys.exit(0)
""")


class Child:
    def __init__(self) -> None:
        self.p = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.p.pid

    def cmd(self, *words: object) -> str:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write(" ".join(map(str, words)) + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def exit_without_reaping(self) -> None:
        """Ask the child to exit and wait until it has, but leave it unreaped (a zombie)."""
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write("exit\n")
        self.p.stdin.flush()
        assert self.p.stdout.read() == ""  # EOF: the child is gone
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.01)
        raise AssertionError("child did not exit")

    def close(self) -> None:
        for p in psutil.Process().children(recursive=True):
            if p.pid == self.pid or self.pid in [q.pid for q in p.parents()]:
                try:
                    p.kill()
                except psutil.Error:
                    pass
        try:
            self.p.kill()
        except OSError:
            pass
        self.p.wait(5)


@pytest.fixture
def child():
    c = Child()
    yield c
    c.close()


def no_gpu_backend() -> FakeNvml:
    return FakeNvml(0, init_error=NVML_ERROR_LIBRARY_NOT_FOUND)


# --------------------------------------------------------------------------------------------
# Real NVML on this machine (no GPU)
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(HAVE_NVML, reason="this machine has a working NVML")
def test_real_nvml_no_gpu_is_a_normal_state():
    s = SystemSampler(os.getpid(), RealNvml())
    try:
        a = s.sample()
        b = s.sample()
    finally:
        s.close()
    for x in (a, b):
        assert isinstance(x, SystemSample)
        assert x.gpus == ()
        assert x.gpu_status == "no GPU: NVML not found (CPU only)"
        assert "NVML not found" in x.gpu_status
        assert abs(x.t - time.time()) < 5


@pytest.mark.skipif(HAVE_NVML, reason="this machine has a working NVML")
def test_default_backend_is_real_and_no_gpu(monkeypatch):
    monkeypatch.delenv(system.FAKE_GPU_ENV, raising=False)
    with SystemSampler() as s:
        assert isinstance(s.backend, RealNvml)
        x = s.sample()
    assert x.gpus == () and "NVML not found" in x.gpu_status
    assert x.proc is None


@pytest.mark.skipif(not HAVE_NVML, reason="needs a GPU with NVML")
def test_real_nvml_with_gpu():
    with SystemSampler(os.getpid(), RealNvml()) as s:
        x = s.sample()
    assert x.gpu_status == ""
    assert len(x.gpus) >= 1
    g = x.gpus[0]
    assert g.index == 0 and g.name
    assert g.mem_total is not None and g.mem_total > 0
    assert g.procs_mem is not None and g.procs_mem >= 0


def test_real_nvml_without_pynvml_module(monkeypatch):
    monkeypatch.setattr(system, "_pynvml_cache", None)
    with SystemSampler(None, RealNvml()) as s:
        x = s.sample()
    assert x.gpus == ()
    assert x.gpu_status == "no GPU: pynvml not installed (CPU only)"


# --------------------------------------------------------------------------------------------
# Host and process tree, with real processes
# --------------------------------------------------------------------------------------------


def test_host_sample_is_sane():
    with SystemSampler(None, no_gpu_backend()) as s:
        s.sample()
        time.sleep(0.2)
        h = s.sample().host
    vm = psutil.virtual_memory()
    assert h.cpu_count == psutil.cpu_count(logical=True)
    assert 0.0 <= h.cpu_pct <= 100.0
    assert h.ram_total == vm.total
    assert 0 < h.ram_used < h.ram_total
    assert abs(h.ram_used - (vm.total - vm.available)) < 512 * MiB


def test_watch_self():
    me = psutil.Process()
    with SystemSampler(os.getpid(), no_gpu_backend()) as s:
        s.sample()
        end = time.time() + 0.3
        while time.time() < end:  # burn a little CPU in this process
            sum(range(1000))
        p = s.sample().proc
    assert p is not None
    assert p.pid == os.getpid()
    assert p.alive is True
    assert p.nprocs >= 1
    assert p.rss >= 0.9 * me.memory_info().rss
    assert p.cpu_pct > 20.0  # it spun for most of the interval


def test_not_watching_gives_no_proc():
    with SystemSampler(None, no_gpu_backend()) as s:
        assert s.sample().proc is None


def test_child_rss_grows_and_cpu_spins(child):
    with SystemSampler(child.pid, no_gpu_backend()) as s:
        before = s.sample().proc
        assert before is not None and before.alive and before.nprocs == 1
        assert before.pid == child.pid
        assert child.cmd("alloc", 200) == "ok"
        after = s.sample().proc
        assert after is not None
        assert after.rss - before.rss > 180 * MiB
        assert after.rss == pytest.approx(psutil.Process(child.pid).memory_info().rss, rel=0.05)

        assert child.cmd("spin") == "ok"
        s.sample()

        def busy():  # a busy thread: near a full core on an idle machine, less on a loaded one
            x = s.sample()
            return x if x.proc is not None and x.proc.cpu_pct > 10.0 and x.host.cpu_pct > 30.0 / psutil.cpu_count() else None

        x = wait_for(busy, timeout=30, every=0.3)
    assert x.proc.cpu_pct < 100.0 * psutil.cpu_count() + 1


def test_tree_includes_grandchildren(child):
    with SystemSampler(child.pid, no_gpu_backend()) as s:
        one = s.sample().proc
        gc_pid = int(child.cmd("fork", 100))
        two = s.sample().proc
    assert one is not None and two is not None
    assert one.nprocs == 1 and two.nprocs == 2
    gc_rss = psutil.Process(gc_pid).memory_info().rss
    assert gc_rss > 90 * MiB
    assert two.rss - one.rss > 0.9 * gc_rss


def test_watching_parent_counts_children(child):
    with SystemSampler(os.getpid(), no_gpu_backend()) as s:
        s.sample()
        child.cmd("alloc", 100)
        p = s.sample().proc
    assert p is not None
    assert p.nprocs >= 2
    assert p.rss >= psutil.Process().memory_info().rss + 90 * MiB


def test_child_exits_mid_watch(child):
    with SystemSampler(child.pid, no_gpu_backend()) as s:
        child.cmd("fork", 10)
        x = s.sample().proc
        assert x is not None and x.alive and x.nprocs == 2

        child.exit_without_reaping()  # zombie: exited but not yet waited for
        z = s.sample().proc
        assert z is not None
        assert z.pid == child.pid
        assert z.alive is False
        assert z.nprocs == 0 and z.rss == 0 and z.cpu_pct == 0.0

        child.p.wait(5)  # reaped: the pid no longer exists at all
        gone = s.sample().proc
        assert gone is not None and gone.alive is False and gone.nprocs == 0


def test_watch_pid_that_never_existed():
    pid = 2**22 + 12345  # above the default pid_max
    while psutil.pid_exists(pid):
        pid += 1
    with SystemSampler(pid, no_gpu_backend()) as s:
        p = s.sample().proc
    assert p is not None and p.pid == pid and p.alive is False and p.nprocs == 0


def test_watch_switches_to_restarted_child(child):
    other = Child()
    try:
        with SystemSampler(child.pid, no_gpu_backend()) as s:
            assert s.sample().proc.pid == child.pid
            child.exit_without_reaping()
            assert s.sample().proc.alive is False
            s.watch(other.pid)
            assert s.pid == other.pid
            p = s.sample().proc
            assert p.pid == other.pid and p.alive and p.nprocs == 1
            s.watch(None)
            assert s.sample().proc is None
    finally:
        other.close()


def test_sample_from_thread_while_watch_changes(child):
    errors: list[BaseException] = []
    with SystemSampler(os.getpid(), FakeNvml(2)) as s:
        def run() -> None:
            try:
                for _ in range(30):
                    s.sample()
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
        t = threading.Thread(target=run)
        t.start()
        for i in range(30):
            s.watch(child.pid if i % 2 else os.getpid())
        t.join(30)
    assert not t.is_alive()
    assert errors == []


# --------------------------------------------------------------------------------------------
# Fake NVML
# --------------------------------------------------------------------------------------------


def test_fake_values_come_through():
    fake = FakeNvml(2, overrides={0: dict(name="Test GPU", util_pct=42, mem_used=3 * GiB,
                                          mem_total=24 * GiB, temp_c=61, power_w=250.5,
                                          power_limit_w=300)})
    with SystemSampler(None, fake) as s:
        x = s.sample()
    assert x.gpu_status == ""
    assert len(x.gpus) == 2
    g0, g1 = x.gpus
    assert g0 == GpuSample(index=0, name="Test GPU", util_pct=42.0, mem_used=3 * GiB,
                           mem_total=24 * GiB, temp_c=61.0, power_w=250.5, power_limit_w=300.0,
                           procs_mem=0)
    assert g1.index == 1
    assert g1.name == FakeNvml.NAME
    assert g1.mem_total == 80 * GiB
    assert 0 < g1.mem_used < g1.mem_total
    assert 0.0 <= g1.util_pct <= 100.0
    assert 20.0 <= g1.temp_c <= 95.0
    assert 0.0 < g1.power_w <= g1.power_limit_w == 400.0


def test_fake_values_vary_deterministically():
    def run() -> list[tuple]:
        with SystemSampler(None, FakeNvml(2)) as s:
            return [tuple((g.util_pct, g.mem_used, g.temp_c, g.power_w) for g in s.sample().gpus)
                    for _ in range(6)]
    a, b = run(), run()
    assert a == b
    assert len({row[0][0] for row in a}) > 1  # util moves from sample to sample
    assert a[0][0] != a[0][1]                 # and the two devices differ


def test_fake_raises_pynvml_classes():
    pynvml = pytest.importorskip("pynvml")
    fake = FakeNvml(1)
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    fake.fail("nvmlDeviceGetPowerUsage")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetPowerUsage(h)
    bad = FakeNvml(1, init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(pynvml.NVMLError_LibraryNotFound) as ei:
        bad.nvmlInit()
    assert str(ei.value) == "NVML Shared Library Not Found"
    with pytest.raises(ValueError):
        fake.fail("nvmlDeviceGetNoSuchThing")


def test_not_supported_fields_become_none():
    fake = FakeNvml(2)
    fake.fail("nvmlDeviceGetTemperature", index=1)
    fake.fail("nvmlDeviceGetEnforcedPowerLimit")  # every device
    fake.fail("nvmlDeviceGetPowerUsage", index=0)
    fake.fail("nvmlDeviceGetComputeRunningProcesses", index=1)
    fake.fail("nvmlDeviceGetGraphicsRunningProcesses", index=1)
    with SystemSampler(os.getpid(), fake) as s:
        x = s.sample()
    assert x.gpu_status == ""  # NotSupported is quiet
    g0, g1 = x.gpus
    assert g0.temp_c is not None and g1.temp_c is None
    assert g0.power_limit_w is None and g1.power_limit_w is None
    assert g0.power_w is None and g1.power_w is not None
    assert g0.procs_mem == 0 and g1.procs_mem is None
    assert g1.util_pct is not None and g1.mem_used is not None and g1.name == FakeNvml.NAME


def test_other_field_errors_are_reported():
    fake = FakeNvml(2)
    fake.fail("nvmlDeviceGetUtilizationRates", index=1, code=NVML_ERROR_GPU_IS_LOST)
    with SystemSampler(None, fake) as s:
        x = s.sample()
    assert len(x.gpus) == 2
    assert x.gpus[1].util_pct is None and x.gpus[0].util_pct is not None
    assert x.gpu_status == "GPU 1: GPU is lost"


def test_not_supported_maps_the_same_without_pynvml(monkeypatch):
    monkeypatch.setattr(system, "_pynvml_cache", None)
    fake = FakeNvml(1)
    fake.nvmlInit()
    fake.fail("nvmlDeviceGetTemperature")
    with pytest.raises(FakeNvmlError) as ei:
        fake.nvmlDeviceGetTemperature(fake.nvmlDeviceGetHandleByIndex(0), 0)
    assert ei.value.value == NVML_ERROR_NOT_SUPPORTED and str(ei.value) == "Not Supported"
    fake.nvmlShutdown()
    with SystemSampler(None, fake) as s:
        x = s.sample()
    assert x.gpu_status == "" and x.gpus[0].temp_c is None and x.gpus[0].util_pct is not None
    bad = FakeNvml(1, init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    with SystemSampler(None, bad) as s:
        assert s.sample().gpu_status == "no GPU: NVML not found (CPU only)"


def test_procs_mem_sums_watched_tree_only(child):
    gc_pid = int(child.cmd("fork", 10))
    outsider = os.getpid()  # the test process is the child's parent: outside the watched tree
    fake = FakeNvml(2, procs={
        0: [(child.pid, 1 * GiB), (gc_pid, 512 * MiB), (outsider, 4 * GiB), (1, 7 * GiB)],
        1: [(child.pid, 256 * MiB), (gc_pid, None)],
    }, graphics_procs={
        1: [(child.pid, 256 * MiB), (outsider, 1 * GiB)],  # same pid in both lists: counted once
    })
    with SystemSampler(child.pid, fake) as s:
        x = s.sample()
        assert x.gpus[0].procs_mem == 1 * GiB + 512 * MiB
        assert x.gpus[1].procs_mem == 256 * MiB
        # the device's used memory includes everyone's
        assert x.gpus[0].mem_used >= 1 * GiB + 512 * MiB + 4 * GiB + 7 * GiB

        s.watch(outsider)  # the parent's tree holds everything except pid 1
        y = s.sample()
        assert y.gpus[0].procs_mem == 1 * GiB + 512 * MiB + 4 * GiB
        assert y.gpus[1].procs_mem == 256 * MiB + 1 * GiB

        s.watch(None)
        z = s.sample()
        assert [g.procs_mem for g in z.gpus] == [0, 0]


def test_procs_mem_drops_when_watched_child_dies(child):
    fake = FakeNvml(1, procs={0: [(child.pid, 2 * GiB)]})
    with SystemSampler(child.pid, fake) as s:
        assert s.sample().gpus[0].procs_mem == 2 * GiB
        child.exit_without_reaping()
        x = s.sample()
    assert x.proc.alive is False
    assert x.gpus[0].procs_mem == 0


# --------------------------------------------------------------------------------------------
# Init failures, retry, close
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fake, status", [
    (FakeNvml(2, init_error=NVML_ERROR_LIBRARY_NOT_FOUND), "no GPU: NVML not found (CPU only)"),
    (FakeNvml(2, init_error=NVML_ERROR_DRIVER_NOT_LOADED), "no GPU: NVIDIA driver not loaded (CPU only)"),
    (FakeNvml(2, init_error=NVML_ERROR_UNKNOWN), "no GPU: NVML init failed: Unknown Error"),
    (FakeNvml(0), "no GPU: NVML found but 0 devices"),
])
def test_init_failure_messages(fake, status):
    with SystemSampler(os.getpid(), fake) as s:
        x = s.sample()
    assert x.gpus == ()
    assert x.gpu_status == status
    assert x.proc is not None and x.proc.alive  # the rest of the sample is unaffected


def test_device_count_failure_message():
    fake = FakeNvml(2)
    fake.fail("nvmlDeviceGetCount", code=NVML_ERROR_UNKNOWN)
    with SystemSampler(None, fake) as s:
        x = s.sample()
    assert x.gpus == () and x.gpu_status == "no GPU: NVML device count failed: Unknown Error"


def test_init_retried_at_most_once_a_minute():
    now = [1000.0]
    fake = FakeNvml(2, init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    s = SystemSampler(None, fake, clock=lambda: now[0])
    for _ in range(5):
        assert s.sample().gpus == ()
    assert fake.init_calls == 1
    now[0] += 59
    s.sample()
    assert fake.init_calls == 1
    fake.init_error = None  # the driver came up
    s.sample()
    assert fake.init_calls == 1
    now[0] += 2
    x = s.sample()
    assert fake.init_calls == 2
    assert len(x.gpus) == 2 and x.gpu_status == ""
    now[0] += 1000
    s.sample()
    assert fake.init_calls == 2  # once up, never re-initialised
    s.close()
    assert fake.shutdown_calls == 1


def test_close_shuts_down_once():
    fake = FakeNvml(1)
    s = SystemSampler(None, fake)
    assert len(s.sample().gpus) == 1
    s.close()
    s.close()
    assert fake.shutdown_calls == 1 and not fake.initialized
    x = s.sample()
    assert x.gpus == () and x.gpu_status.startswith("no GPU")
    assert fake.init_calls == 1


def test_close_without_init_does_not_shutdown():
    fake = FakeNvml(1, init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    s = SystemSampler(None, fake)
    s.sample()
    s.close()
    assert fake.shutdown_calls == 0


def test_env_var_fake_gpus(monkeypatch, child):
    monkeypatch.setenv(system.FAKE_GPU_ENV, "3")
    assert isinstance(default_backend(), FakeNvml)
    with SystemSampler(child.pid) as s:
        x = s.sample()
    assert len(x.gpus) == 3 and x.gpu_status == ""
    assert x.gpus[0].procs_mem > 1 * GiB  # the demo attributes memory to the watched pid
    assert x.gpus[1].procs_mem == 0
    monkeypatch.setenv(system.FAKE_GPU_ENV, "0")
    with SystemSampler() as s:
        assert s.sample().gpu_status == "no GPU: NVML found but 0 devices"
    monkeypatch.setenv(system.FAKE_GPU_ENV, "lots")
    assert isinstance(default_backend(), RealNvml)


# --------------------------------------------------------------------------------------------
# fmt_bytes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, text", [
    (0, "0 B"),
    (512, "512 B"),
    (1023, "1023 B"),
    (1024, "1.0 KB"),
    (512 * MiB, "512 MB"),
    (int(6.2 * GiB), "6.2 GB"),
    (int(9.96 * GiB), "10 GB"),
    (80 * GiB, "80 GB"),
    (int(1023.7 * MiB), "1.0 GB"),
    (3 * 1024 * GiB, "3.0 TB"),
    (-2 * MiB, "-2.0 MB"),
    (None, "–"),
])
def test_fmt_bytes(n, text):
    assert fmt_bytes(n) == text
