"""How hyperparameter values and counts read in progress lines, legends and tables."""

from __future__ import annotations

import numpy as np
import pandas as pd


def format_value(value) -> str:
    """A hyperparameter value as people read it: floats to three significant digits, an
    empty cell (a conditional hyperparameter whose condition is not met) as "inactive"."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return "inactive"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_values(values: dict) -> str:
    return " ".join(f"{name}={format_value(value)}" for name, value in values.items())


def counted(number, noun: str) -> str:
    """"1 repeat", "3 repeats": a count with its noun in the number it takes."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def distinguishing(values, *, fewest: int = 6) -> dict:
    """Each number written with the fewest significant digits, ``fewest`` or more, that
    keep different numbers different: a declared value as declared (0.9995), a drawn one
    (0.000351234567) to six digits unless two differ only further on."""
    values = set(values)
    for digits in range(fewest, 18):
        written = {v: f"{v:.{digits}g}" for v in values}
        if len(set(written.values())) == len(values):
            return written
    return {v: repr(v) for v in values}


def value_labels(values):
    """A function writing each of ``values`` as ``format_value`` does (three significant
    digits) or with as many more as keep two different numbers apart: the labels of one
    legend, axis or heatmap never read 0.012 for both 0.0118 and 0.0123."""
    floats = [v for v in values if isinstance(v, float) and v == v]
    shown = distinguishing(floats, fewest=3)
    return lambda value: shown[value] if value in shown else format_value(value)


def as_declared(values: pd.Series, column: pd.Series) -> pd.Series:
    """A hyperparameter column as the space gave it: "inactive" in empty cells (a
    conditional one, not active), integers that reading the table made floats (4.0)
    integers again, and other numbers with as many digits as tell apart the values of
    the whole ``column`` (0.9995, not 1.000; 0.0118, not 0.012)."""
    present = column.dropna()
    if not pd.api.types.is_float_dtype(column):
        return values.where(values.notna(), format_value(None)).astype(object)
    # Past 2**53 a float holds no exact integer: 1e30 is no count to write in 31 digits.
    integral = bool(np.isfinite(present).all() and (present == present.round()).all()
                    and (present.abs() < 2 ** 53).all())
    shown = distinguishing(present.unique())
    return pd.Series([format_value(v) if pd.isna(v) else int(v) if integral else shown[v]
                      for v in values], index=values.index, dtype=object)


def score_texts(values: pd.Series, column: pd.Series, *, tie_rtol: float) -> pd.Series:
    """Scores written with the fewest decimals, three or more, at which two scores of the
    whole ``column`` that are not ties (equal within ``tie_rtol``, relative) never read
    alike: 0.9456 and 0.9461 (one image apart in 1,985), not 0.946 twice. Tied scores
    are written alike, as their largest: two sums of one count of correct images either
    side of a rounding midpoint (0.80049998, 0.80050001) would otherwise read 0.800 and
    0.801. Empty cells stay empty."""
    present = np.sort(column.dropna().unique())
    # Runs of ties, each written as its largest member.
    written_as, start = {}, 0
    for i in range(1, len(present) + 1):
        if i == len(present) or not np.isclose(present[i], present[i - 1], rtol=tie_rtol,
                                               atol=0):
            for value in present[start:i]:
                written_as[value] = present[i - 1]
            start = i
    shown = sorted(set(written_as.values()))
    decimals = 3
    # Written with fixed decimals, scores are ordered as the numbers are: two that are not
    # ties and read alike would make some neighbouring pair read alike too.
    while decimals < 17 and any(f"{a:.{decimals}f}" == f"{b:.{decimals}f}"
                                for a, b in zip(shown, shown[1:])):
        decimals += 1
    return pd.Series([v if pd.isna(v) else f"{written_as.get(v, v):.{decimals}f}"
                      for v in values], index=values.index, dtype=object)
