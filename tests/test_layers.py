"""DESIGN rule 8: the training side never imports the UI, textual or plotext; the UI's layers point one way.

The rule is pyproject's import-linter contracts; these tests prove they see the installed layout and
that a forbidden import really breaks them.
"""

import shutil
import subprocess
import sys

from tests.lint_imports import ROOT, lint, stage


def test_contracts_hold_on_the_installed_layout(tmp_path):
    result = lint(stage(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The training side stays light: no UI, textual, plotext or rich KEPT" in result.stdout
    assert "Layers inside the UI point one way KEPT" in result.stdout


def with_line(tmp_path, folder: str, module: str, line: str):
    """A copy of one of the repository's package folders with ``line`` appended to one module."""
    copy = tmp_path / "copy" / folder
    shutil.copytree(ROOT / folder, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / module).open("a") as f:
        f.write(f"\n{line}\n")
    return copy


def test_a_textual_import_in_the_trainer_breaks_the_contract(tmp_path):
    trainer = with_line(tmp_path, "trainer", "params.py", "import textual  # deliberate")
    result = lint(stage(tmp_path / "staged", replace={"neurotop.trainer": trainer}))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The training side stays light: no UI, textual, plotext or rich BROKEN" in result.stdout
    assert "neurotop.trainer.params -> textual" in result.stdout


def test_the_store_importing_the_app_breaks_the_layers(tmp_path):
    tui = with_line(tmp_path, "tui", "store.py", "from neurotop.tui.app import NeurotopApp  # deliberate")
    result = lint(stage(tmp_path / "staged", replace={"neurotop.tui": tui}))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Layers inside the UI point one way BROKEN" in result.stdout
    assert "neurotop.tui.store -> neurotop.tui.app" in result.stdout


def test_trainer_imports_stay_light():
    """At run time too: importing the SDK, the integrations and the demo loads no UI module."""
    code = (
        "import sys, neurotop, neurotop.integrations, neurotop.trainer.monitor, neurotop.trainer.params, neurotop.trainer.protocol, neurotop.trainer.journal, neurotop.trainer.probes\n"
        "import neurotop.trainer.demo.autoencoder\n"
        "bad = sorted(m for m in sys.modules if m.startswith('neurotop.tui') or m.split('.')[0] in ('textual', 'plotext', 'textual_plotext', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
