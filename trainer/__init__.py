"""The training side of neurotop: light, free of textual and plotext (DESIGN rule 8)."""

from neurotop.trainer.monitor import Monitor
from neurotop.trainer.params import Param

__all__ = ["Monitor", "Param"]
