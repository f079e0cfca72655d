"""neurotop: a `top` for neural-network training.

The one import name the distribution installs. The repository's folders map into it:
``trainer/`` is ``neurotop.trainer`` (the SDK, light: no textual, plotext or rich), ``tui/`` is
``neurotop.tui`` (the terminal app), ``themes/`` is ``neurotop.themes``; the framework bridges live
here as ``neurotop.integrations``. A training script needs only::

    from neurotop import Monitor, Param
"""

from neurotop.trainer.monitor import Monitor
from neurotop.trainer.params import Param

__all__ = ["Monitor", "Param"]
