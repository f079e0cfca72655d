"""The training side of neurotop: light, free of textual and plotext (DESIGN rule 8)."""

from trainer.monitor import Monitor
from trainer.params import Param

__all__ = ["Monitor", "Param"]
