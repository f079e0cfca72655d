"""Small text helpers shared by the panes: a bar and a compact number."""

from __future__ import annotations


def bar(fraction: float | None, width: int = 10) -> str:
    """``████░░░░░░`` for a fraction in [0, 1]; blank-ish when unknown."""
    if fraction is None or fraction != fraction:
        return "·" * width
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def compact(value: object) -> str:
    """Numbers as a person reads them in a narrow pane: 2.0e-03, 0.25, 1,024, adam."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    return f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
