"""What a person's keys and typing ask of a declared parameter, before the child validates it:
``+``/``-`` steps and typed text turned into a value of the parameter's kind."""

from __future__ import annotations

from neurotop.trainer.params import Refused
from neurotop.trainer.protocol import ParamSpec, Value


def step_value(spec: ParamSpec, value: Value, direction: int) -> Value:
    """The next value a ``+``/``-`` key asks for: ×2 or ÷2 on a log scale, a tenth of the range on
    a linear one (or 1 for ints), the next choice over, or the bool flipped. Clamped to bounds."""
    if spec.kind == "bool":
        return not value
    if spec.kind == "choice":
        choices = spec.choices or []
        i = choices.index(value) if value in choices else 0
        return choices[(i + direction) % len(choices)]
    if spec.log:
        new = value * 2.0 if direction > 0 else value / 2.0
    elif spec.min is not None and spec.max is not None and spec.kind == "float":
        new = value + direction * (spec.max - spec.min) / 10.0
    else:
        new = value + direction * (1 if spec.kind == "int" else max(abs(value) * 0.1, 0.1))
    if spec.min is not None:
        new = max(spec.min, new)
    if spec.max is not None:
        new = min(spec.max, new)
    return int(round(new)) if spec.kind == "int" else float(new)


def parse_typed(spec: ParamSpec, text: str) -> Value:
    """Turn what a person typed into a value of the parameter's kind (validation is the child's).

    Raises ``Refused`` for text that is not even of the right shape.
    """
    text = text.strip()
    if spec.kind == "choice":
        return text
    if spec.kind == "bool":
        low = text.lower()
        if low in ("1", "true", "yes", "on", "y"):
            return True
        if low in ("0", "false", "no", "off", "n"):
            return False
        raise Refused("type true or false")
    try:
        number = float(text)
    except ValueError:
        raise Refused(f"{text!r} is not a number") from None
    if spec.kind == "int" and number.is_integer():
        return int(number)
    return number
