"""System: per GPU use and memory, the host's CPU and RAM, and the run's own process tree."""

from __future__ import annotations

from textual.widgets import Static

from neurotop.tui.store import RunStore
from neurotop.tui.system import SystemSample, fmt_bytes
from neurotop.tui.widgets.bars import bar


def describe_system(sample: SystemSample | None, width: int = 40) -> str:
    """The pane's text (Textual markup). No GPU is a normal state: one line says so."""
    if sample is None:
        return "[dim]sampling…[/dim]"
    lines = []
    for gpu in sample.gpus:
        util = None if gpu.util_pct is None else gpu.util_pct / 100
        mem = gpu.mem_used / gpu.mem_total if gpu.mem_used is not None and gpu.mem_total else None
        temp = f"{gpu.temp_c:.0f}°C" if gpu.temp_c is not None else ""
        power = f"{gpu.power_w:.0f} W" if gpu.power_w is not None else ""
        pct = f"{gpu.util_pct:.0f}%" if gpu.util_pct is not None else "n/a"
        lines.append(f"[b]GPU{gpu.index}[/b] {(gpu.name or '')[:18]}")
        lines.append(f"  util [$primary]{bar(util)}[/] {pct:>4}  {temp} {power}")
        lines.append(f"  mem  [$primary]{bar(mem)}[/] {fmt_bytes(gpu.mem_used)}/{fmt_bytes(gpu.mem_total)}"
                     + (f"  run {fmt_bytes(gpu.procs_mem)}" if gpu.procs_mem else ""))
    if sample.gpu_status:
        lines.append(f"[dim]{sample.gpu_status}[/dim]")
    host = sample.host
    lines.append(f"CPU [$secondary]{bar(host.cpu_pct / 100, 8)}[/] {host.cpu_pct:3.0f}% of {host.cpu_count}"
                 f"   RAM {fmt_bytes(host.ram_used)}/{fmt_bytes(host.ram_total)}")
    proc = sample.proc
    if proc is not None:
        if proc.alive:
            lines.append(f"run: cpu {proc.cpu_pct:.0f}%  rss {fmt_bytes(proc.rss)}  procs {proc.nprocs}")
        else:
            lines.append("run: [dim]process gone[/dim]")
    return "\n".join(lines)


class SystemPane(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._seen = -1

    def refresh_from(self, store: RunStore) -> None:
        version = store.system.version
        if version != self._seen:
            self._seen = version
            self.update(describe_system(store.system.sample))
