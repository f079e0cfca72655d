"""Run lint-imports on the layout that installs, not on the repository's folders.

The repository's ``trainer/``, ``tui/`` and ``themes/`` install as ``neurotop.trainer``,
``neurotop.tui`` and ``neurotop.themes`` (pyproject's ``package-dir``). grimp finds a package by
walking its one folder, so in the repository it would see only ``neurotop/``. This links the
installed layout together in a temporary folder and runs the contracts of pyproject.toml there.

    python -m tests.lint_imports          (what `make test` runs first)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "pyproject.toml"
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def stage(dest: Path, replace: dict[str, Path] | None = None) -> Path:
    """Link each package's folder where it installs, under ``dest``; ``replace`` swaps a package's folder."""
    mapping = tomllib.loads(CONFIG.read_text())["tool"]["setuptools"]["package-dir"]
    folders = {name: ROOT / folder for name, folder in mapping.items()} | (replace or {})
    for name, folder in sorted(folders.items()):  # a parent before its children
        target = dest.joinpath(*name.split("."))
        if "." in name:
            target.symlink_to(folder, target_is_directory=True)
        else:  # the top package's own folder holds its subpackages' links: link its entries one by one
            target.mkdir(parents=True)
            for entry in folder.iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
    return dest


def lint(staged: Path) -> subprocess.CompletedProcess:
    """lint-imports with pyproject's contracts, run where ``neurotop`` is the staged one (it puts its cwd first)."""
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, str(CONFIG), "--no-cache"], cwd=staged,
                          capture_output=True, text=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="neurotop-lint-") as tmp:
        result = lint(stage(Path(tmp)))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
