"""DESIGN rule 8: the training side never imports the UI, textual or plotext."""

import subprocess
import sys


def test_trainer_imports_stay_light():
    code = (
        "import sys, neurotop, neurotop.integrations, neurotop.trainer.monitor, neurotop.trainer.params, neurotop.trainer.protocol, neurotop.trainer.journal, neurotop.trainer.probes\n"
        "import neurotop.trainer.demo.autoencoder\n"
        "bad = sorted(m for m in sys.modules if m.startswith('neurotop.tui') or m.split('.')[0] in ('textual', 'plotext', 'textual_plotext', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_trainer_source_mentions_the_ui():
    from pathlib import Path

    root = Path(__file__).parent.parent / "trainer"
    for path in root.rglob("*.py"):
        text = path.read_text()
        for banned in ("import textual", "from textual", "import plotext", "from tui", "import tui"):
            assert banned not in text, f"{path} has {banned!r}"
