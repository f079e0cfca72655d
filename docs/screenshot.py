"""Save SVG screenshots of neurotop on the real demo: `python docs/screenshot.py` (about 30 s)."""

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from neurotop.trainer import journal  # noqa: E402
from neurotop.tui.app import NeurotopApp  # noqa: E402
from neurotop.tui.link import Link, python_argv  # noqa: E402


async def shoot(size: tuple[int, int], seconds: float, name: str, keys: tuple[str, ...] = ()) -> None:
    run_dir = journal.create_run_dir(Path(tempfile.mkdtemp()) / "runs", "autoencoder-digits")
    app = NeurotopApp(lambda s, n: Link.spawn(python_argv("neurotop.trainer.demo", []), run_dir, s, n),
                      name="autoencoder-digits")
    async with app.run_test(size=size) as pilot:
        await pilot.pause(seconds / 2)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.3)
        await pilot.pause(seconds / 2)
        app.dashboard.repaint_text()
        app.dashboard.repaint_pictures()
        await pilot.pause(0.5)
        app.save_screenshot(str(ROOT / "docs" / "images" / name))
        app.link.stop()


if __name__ == "__main__":
    asyncio.run(shoot((120, 40), 16, "neurotop-120x40.svg", ("plus",)))
    asyncio.run(shoot((80, 24), 8, "neurotop-80x24.svg"))
