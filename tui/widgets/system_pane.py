"""System: per GPU use and memory, the host's CPU and RAM, and the run's own process tree.

Each line is made of figures that stay whole: where the pane is narrow (80×24) a figure moves
to the next line rather than wrap in its middle (``1.7 / GB/24 GB``) or fall off the edge.
"""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from neurotop.tui.format import fit, flow, fmt_bytes, one_line
from neurotop.tui.store import RunStore
from neurotop.tui.system import SystemSample
from neurotop.tui.widgets.bars import bar


def describe_system(sample: SystemSample | None, width: int = 40) -> str:
    """The pane's text (Textual markup) for a pane ``width`` cells wide. No GPU is a normal
    state: one line says so."""
    if sample is None:
        return "[dim]sampling…[/dim]"
    lines: list[str] = []
    cells = 10 if width >= 40 else 6  # the bars give way first

    def add(parts: list[tuple[str, str]], indent: str = "    ") -> None:
        """Figures as (plain text, markup), laid on as few lines as ``width`` takes."""
        for i, line in enumerate(flow(parts, width, length=lambda part: len(part[0]))):
            lines.append((indent if i else "") + "  ".join(markup for _, markup in line))

    for gpu in sample.gpus:
        util = None if gpu.util_pct is None else gpu.util_pct / 100
        mem = gpu.mem_used / gpu.mem_total if gpu.mem_used is not None and gpu.mem_total else None
        pct = f"{gpu.util_pct:.0f}%" if gpu.util_pct is not None else "n/a"
        name = escape(fit(one_line(gpu.name or ""), max(4, width - 6)).rstrip())
        lines.append(f"[b]GPU{gpu.index}[/b] {name}")
        use = f"util {bar(util, cells)} {pct:>4}"
        figures = [(f"  {use}", f"  util [$primary]{bar(util, cells)}[/] {pct:>4}")]
        figures += [(t, t) for t in (f"{gpu.temp_c:.0f}°C" if gpu.temp_c is not None else "",
                                     f"{gpu.power_w:.0f} W" if gpu.power_w is not None else "") if t]
        add(figures)
        held = f"{fmt_bytes(gpu.mem_used)}/{fmt_bytes(gpu.mem_total)}"
        figures = [(f"  mem  {bar(mem, cells)} {held}", f"  mem  [$primary]{bar(mem, cells)}[/] {held}")]
        if gpu.procs_mem:
            figures.append((f"run {fmt_bytes(gpu.procs_mem)}", f"run {fmt_bytes(gpu.procs_mem)}"))
        add(figures)
    if sample.gpu_status:
        lines.append(f"[dim]{escape(one_line(sample.gpu_status))}[/dim]")
    host = sample.host
    cpu = f"{host.cpu_pct:3.0f}% of {host.cpu_count}"
    ram = f"RAM {fmt_bytes(host.ram_used)}/{fmt_bytes(host.ram_total)}"
    add([(f"CPU {bar(host.cpu_pct / 100, 8)} {cpu}", f"CPU [$secondary]{bar(host.cpu_pct / 100, 8)}[/] {cpu}"),
         (ram, ram)], indent="")
    proc = sample.proc
    if proc is not None:
        if proc.alive:
            figures = [f"run cpu {proc.cpu_pct:.0f}%", f"rss {fmt_bytes(proc.rss)}", f"procs {proc.nprocs}"]
            add([(t, t) for t in figures])
        else:
            lines.append("run [dim]process gone[/dim]")
    return "\n".join(lines)


class SystemPane(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._seen: tuple | None = None

    def refresh_from(self, store: RunStore) -> None:
        key = (store.system.version, self.content_size.width)
        if key != self._seen:
            self._seen = key
            self.update(describe_system(store.system.sample, self.content_size.width or 40))
