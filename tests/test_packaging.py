"""One import name, `neurotop`: what the wheel holds, and a user's own trainer.py, tui.py and themes/.

Building the wheel (pip, build isolation) takes seconds: those tests are marked slow.
"""

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE_DIR = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
SOURCES = ["pyproject.toml", "README.md", *sorted(set(PACKAGE_DIR.values()))]

# What a user runs from their own folder: the SDK, and the UI finding its own themes and stylesheet.
USE_NEUROTOP = """
import neurotop
from neurotop import Monitor, Param
from neurotop.tui.app import NeurotopApp
from neurotop.tui.themes import load_themes
themes, problems = load_themes()
assert not problems, problems
print(neurotop.__file__)
print(" ".join(sorted(t.name for t in themes)))
"""


def repository_files(suffix: str) -> dict[str, Path]:
    """Each ``suffix`` file of the packages, by the path it installs at (``neurotop/tui/app.py``)."""
    found = {}
    for package, folder in PACKAGE_DIR.items():
        base = ROOT / folder
        for path in base.glob(f"*{suffix}"):  # a package's own files; its subpackages have their own entry
            found["/".join([*package.split("."), path.name])] = path
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel pip builds from a copy of the sources (so no build/ or egg-info lands in the tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(path, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(source)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (path,) = (tmp / "dist").glob("neurotop-*.whl")
    with zipfile.ZipFile(path) as whl:
        yield whl


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A user's project: their own trainer.py, tui.py and themes/, none of which neurotop may pick up."""
    folder = tmp_path / "project"
    (folder / "themes").mkdir(parents=True)
    for name in ("trainer.py", "tui.py"):
        (folder / name).write_text(f"raise RuntimeError('neurotop imported the user\\'s own {name}')\n")
    (folder / "themes" / "neurotop-dark.toml").write_text("not a theme [\n")
    return folder


def use_neurotop(cwd: Path, pythonpath: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath, "XDG_CONFIG_HOME": str(cwd / "config")}
    done = subprocess.run([sys.executable, "-c", USE_NEUROTOP], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.slow
def test_the_wheel_installs_one_import_name(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"neurotop"}


@pytest.mark.slow
def test_the_wheel_holds_every_module_stylesheet_and_theme(wheel):
    names = set(wheel.namelist())
    for suffix in (".py", ".tcss", ".toml"):
        expected = repository_files(suffix)
        assert expected, suffix
        assert set(expected) <= names, sorted(set(expected) - names)


@pytest.mark.slow
def test_the_installed_wheel_works_from_a_users_folder(wheel, user_folder, tmp_path):
    site = tmp_path / "site"
    wheel.extractall(site)
    where, themes = use_neurotop(user_folder, str(site))
    assert Path(where).is_relative_to(site)
    assert {"neurotop-dark", "neurotop-light"} <= set(themes.split())


def test_the_development_install_works_from_a_users_folder(user_folder):
    where, themes = use_neurotop(user_folder, "")
    assert Path(where).is_relative_to(ROOT)
    assert {"neurotop-dark", "neurotop-light"} <= set(themes.split())
