"""Text for people: durations, sizes, step counts, short values, fitted text, and the one sanitiser.

Every pane formats through here, so a figure reads the same wherever it is shown, and every string
a run can set (names, notes, metric names, errors, output) passes ``printable`` before it is drawn.
"""

from __future__ import annotations

import re
from typing import Callable, TypeVar

T = TypeVar("T")

_CONTROL = re.compile(r"""
      \x1b\[[0-?]*[ -/]*[@-~]                   # CSI: colours, cursor moves, erase line
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?        # OSC: window title, hyperlinks
    | \x1b[ -/]*[0-~]                           # two-character escapes (ESC 7, ESC ( B ...)
    | [\x00-\x08\x0b-\x1f\x7f-\x9f]             # other control characters (C0 but tab/newline, DEL, C1)
""", re.VERBOSE)
_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def printable(text: str) -> str:
    """``text`` with terminal escapes and control characters removed: what a run sends can move
    no cursor, set no title and ring no bell. Tabs and newlines stay (the caller lays them out)."""
    if text.isprintable():
        return text
    return _CONTROL.sub("", text).replace("\x1b", "")


def one_line(text: str) -> str:
    """``printable`` on one line: newlines and tabs become spaces (a name, a note in a list)."""
    return printable(text).replace("\r", "").replace("\n", " ").replace("\t", " ")


def duration(seconds: float) -> str:
    """Elapsed time as a clock: ``00:34:10``; past a day ``2d 03:04:05``."""
    seconds = int(max(0, seconds))
    days, seconds = divmod(seconds, 86400)
    h, rem = divmod(seconds, 3600)
    clock = f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
    return f"{days}d {clock}" if days else clock


def fmt_bytes(n: int | float | None) -> str:
    """Human-readable size, binary multiples with the usual short labels: "6.2 GB", "512 MB".

    One decimal below 10 units, none above; ``None`` gives "–".
    """
    if n is None:
        return "–"
    sign = "-" if n < 0 else ""
    v = float(abs(n))
    i = 0
    while i < len(_BYTE_UNITS) - 1 and v >= 1024:
        v /= 1024
        i += 1
    if i == 0:
        return f"{sign}{int(round(v))} B"
    text = f"{v:.1f}" if v < 9.95 else f"{v:.0f}"
    if text == "1024" and i < len(_BYTE_UNITS) - 1:
        text, i = "1.0", i + 1
    return f"{sign}{text} {_BYTE_UNITS[i]}"


def fmt_step(step: int | float) -> str:
    """A step count as a person reads it on an axis or in a narrow title: 950, 12.5k, 3.2M."""
    step = int(step)
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if abs(step) >= size * 10 or (abs(step) >= size and step % (size // 10) == 0):
            return f"{step / size:.4g}{unit}"
    return str(step)


def short(value: object) -> str:
    """A parameter value as a person reads it in a narrow pane, a marker or a note: 2.00e-03,
    0.25, 1,024, on, adam (the same figure wherever it is shown)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return one_line(str(value))


def fit(text: str, width: int, left: bool = True) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis when too long."""
    if width <= 0:
        return ""
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.ljust(width) if left else text.rjust(width)


def fit_parts(parts: list[str], width: int, sep: str = "  ") -> str:
    """As many of ``parts`` as fit in ``width`` cells, in the order given, each whole or left out:
    a narrow line drops its least needed figures (put them last) instead of cutting a word."""
    out: list[str] = []
    used = 0
    for part in parts:
        need = len(part) + (len(sep) if out else 0)
        if used + need <= width:
            out.append(part)
            used += need
    return sep.join(out)


def flow(parts: list[T], width: int, sep: str = "  ", length: Callable[[T], int] = len) -> list[list[T]]:
    """``parts`` grouped into as few lines of ``width`` cells as they take, never split inside a
    part (a part wider than the line gets a line of its own). ``length`` measures a part: a part
    may be (plain text, markup) as long as ``length`` reads the plain text."""
    lines: list[list[T]] = []
    used = 0
    for part in parts:
        size = length(part)
        if lines and lines[-1] and used + len(sep) + size <= width:
            lines[-1].append(part)
            used += len(sep) + size
        else:
            lines.append([part])
            used = size
    return lines


def wrap(text: str, width: int) -> list[str]:
    """``text`` on lines of at most ``width`` characters, broken after a blank where there is
    one in the line's second half, else cut across (a path or a hash has no blank)."""
    if width <= 0:
        return [text]
    rows = []
    while len(text) > width:
        cut = text.rfind(" ", width // 2, width + 1)
        cut = width if cut < 0 else cut + 1
        rows.append(text[:cut])
        text = text[cut:]
    rows.append(text)
    return rows
