"""Themes as data: TOML files from the ``themes`` package and the user's config folder."""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path

from textual.theme import Theme

USER_THEMES = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "neurotop" / "themes"
THEME_FIELDS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground",
                "background", "surface", "panel", "boost", "dark")


def theme_from_toml(text: str) -> Theme:
    data = tomllib.loads(text)
    fields = {k: data[k] for k in THEME_FIELDS if k in data}
    variables = {str(k): str(v) for k, v in data.get("variables", {}).items()}
    return Theme(name=str(data["name"]), variables=variables, **fields)


def load_themes() -> tuple[list[Theme], list[str]]:
    """The built-in themes, then the user's; returns (themes, problems) so a bad file is reported."""
    themes, problems = [], []
    builtin = resources.files("neurotop.themes")
    sources = sorted((f.name, f.read_text()) for f in builtin.iterdir() if f.name.endswith(".toml"))
    if USER_THEMES.is_dir():
        sources += [(str(p), p.read_text(errors="replace")) for p in sorted(USER_THEMES.glob("*.toml"))]
    for origin, text in sources:
        try:
            themes.append(theme_from_toml(text))
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as err:
            problems.append(f"theme {origin}: {err}")
    return themes, problems
