"""The bar the panes draw fractions with (text helpers are in ``neurotop.tui.format``)."""

from __future__ import annotations


def bar(fraction: float | None, width: int = 10) -> str:
    """``████░░░░░░`` for a fraction in [0, 1]; blank-ish when unknown."""
    if fraction is None or fraction != fraction:
        return "·" * width
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)
