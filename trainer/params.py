"""Tunable parameters: declared, typed and bounded in the child (DESIGN rule 7).

A change arrives as a plain value over a pipe or socket; it is checked against its declaration
and either applied whole or refused with a reason. Nothing is ever evaluated.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from neurotop.trainer.protocol import ParamSpec, Value


class Refused(ValueError):
    """A value that a declaration does not accept; the message is the reason shown to the user."""


class Param:
    """One declared parameter.

    ``Param(1e-3, min=1e-6, max=1.0, log=True)`` is a log-scale float; the kind follows the default
    (bool, int, float) unless ``choices`` makes it a choice. ``on_change(new, old)`` runs in the
    training thread at the step boundary where the change is applied.
    """

    def __init__(
        self,
        default: Value,
        *,
        min: float | None = None,
        max: float | None = None,
        log: bool = False,
        choices: list[str] | None = None,
        help: str = "",
        on_change: Callable[[Any, Any], None] | None = None,
    ) -> None:
        if choices is not None:
            self.kind = "choice"
        elif isinstance(default, bool):
            self.kind = "bool"
        elif isinstance(default, int):
            self.kind = "int"
        elif isinstance(default, float):
            self.kind = "float"
        else:
            raise TypeError(f"a parameter's default must be bool, int or float, or give choices: {default!r}")
        if log and (min is None or min <= 0):
            raise ValueError("a log-scale parameter needs a positive min")
        self.min, self.max, self.log, self.help = min, max, log, help
        self.choices = [str(c) for c in choices] if choices is not None else None
        self.on_change = on_change
        self.name = ""
        self.default = self.validate(default)

    def validate(self, value: Any) -> Value:
        """Return the value as this parameter's type, or raise ``Refused`` with the reason."""
        kind = self.kind
        if kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise Refused(f"must be one of {', '.join(self.choices)}")
            return value
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise Refused("must be true or false")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused(f"must be a number, not {type(value).__name__}")
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise Refused("must be a whole number")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise Refused("must be finite")
        if self.min is not None and value < self.min:
            raise Refused(f"below the minimum {self.min:g}")
        if self.max is not None and value > self.max:
            raise Refused(f"above the maximum {self.max:g}")
        return value

    def spec(self, name: str, value: Value) -> ParamSpec:
        return ParamSpec(
            name=name, kind=self.kind, value=value, default=self.default, min=self.min,
            max=self.max, log=self.log, choices=self.choices, help=self.help,
        )
