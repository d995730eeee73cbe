"""How hyperparameter values read in progress lines, legends and tables."""

from __future__ import annotations


def format_value(value) -> str:
    """A hyperparameter value as people read it: floats to three significant digits, an
    empty cell (a conditional hyperparameter whose condition is not met) as "inactive"."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return "inactive"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_values(values: dict) -> str:
    return " ".join(f"{name}={format_value(value)}" for name, value in values.items())
