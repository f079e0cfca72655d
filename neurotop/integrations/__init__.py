"""Callbacks that connect other training frameworks to neurotop, each a thin layer over ``Monitor``.

    from neurotop.integrations.lightning import NeurotopCallback      # PyTorch Lightning
    from neurotop.integrations.huggingface import NeurotopCallback    # transformers.Trainer

Importing this package imports neither framework: each module imports its own only when it is
itself imported (``neurotop.integrations.lightning`` needs ``lightning`` or ``pytorch_lightning``,
``neurotop.integrations.huggingface`` needs ``transformers``).
"""

from __future__ import annotations

import importlib

__all__ = ["huggingface", "lightning"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
