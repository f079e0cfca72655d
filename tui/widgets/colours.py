"""The one colour helper: theme variables and colour strings as Textual ``Color``s.

A theme (a user's file included) may name a colour that does not parse, or point at another
variable (``$background``): panes get the fallback then, never an exception mid-paint.
"""

from __future__ import annotations

from textual.app import App
from textual.color import Color, ColorParseError


def parse_colour(text: object, fallback: str) -> Color:
    """``text`` as a ``Color``; ``fallback`` when it is empty or not a colour."""
    try:
        return Color.parse(str(text)) if text else Color.parse(fallback)
    except (ColorParseError, ValueError, TypeError):
        return Color.parse(fallback)


def theme_colour(app: App, name: str, fallback: str) -> Color:
    """The current theme's variable ``name`` (read from the theme itself first: the app's
    ``theme_variables`` are refreshed with the CSS, which may lag a theme switch)."""
    variables = {**app.theme_variables, **app.current_theme.variables}
    value = str(variables.get(name) or fallback).strip()
    if value.startswith("$"):  # a reference to another theme colour, e.g. "$background"
        value = str(variables.get(value[1:]) or fallback)
    return parse_colour(value, fallback)
