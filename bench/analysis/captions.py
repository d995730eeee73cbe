"""The sentences figure captions share: what a best-of figure drew, intervals cut at 0 or
1, lines whose later points average fewer executions, what an inactive hyperparameter
left out, and lists of trials."""

from __future__ import annotations

import pandas as pd

from bench.analysis import numbers
from bench.analysis.formatting import format_values, value_labels
from bench.analysis.tables import Tables


def best_note(over: list[str], rows: pd.DataFrame | None = None, *,
              tables: Tables | None = None) -> str:
    """What a best-of figure drew in place of ``over``, and the ties it broke (``rows``
    from ``numbers.best_configurations``; ``tables`` leaves out of a tie the names that
    its run's space does not have, in a joint report)."""
    if not over:
        return ""
    note = (f" Where {', '.join(over)} also varied, each line or point is the value(s) "
            "with the best final validation accuracy, so every interval is over the "
            "repeats of one configuration.")
    for tie in ([] if rows is None else rows.attrs.get("ties", [])):
        where = f" for {format_values(tie['keep'])}" if tie["keep"] else ""
        run_id = tie["keep"].get("run_id")
        named = [name for name in over
                 if tables is None or run_id is None or not tables.lacks(run_id, name)]
        labels = {name: value_labels([v[name] for v in tie["over"]]) for name in named}
        values = " and ".join(" ".join(f"{name}={labels[name](v[name])}" for name in named)
                              for v in tie["over"])
        note += (f" Tied{where}: {values} share the best ({tie['score']:.4f}); the first "
                 "is drawn.")
    return note


def cut_note(drawn: pd.DataFrame) -> str:
    """How many of the accuracy intervals in ``drawn`` (columns ``low, high``) were cut at
    0 or 1 (``numbers.ACCURACY_BOUNDS``), or "" for none. An interval of some width that
    ends exactly at a bound was cut there (one cut at both ends stays symmetric)."""
    shown = drawn.dropna(subset=["low", "high"])
    bottom, top = numbers.ACCURACY_BOUNDS
    cut = (shown["high"] > shown["low"]) & ((shown["low"] <= bottom) | (shown["high"] >= top))
    if not cut.any():
        return ""
    count = int(cut.sum())
    return (f" {count} of the {len(shown)} intervals (one per point) reach"
            f"{'es' if count == 1 else ''} past 0 or 1, beyond what accuracy can be, and "
            f"{'is' if count == 1 else 'are'} drawn cut there.")


def fewer_executions_note(curve: pd.DataFrame, by: list[str], label=format_values) -> str:
    """Where a line's later points average fewer executions than its first (a space's
    early stopping ended some sooner): which lines, from which epoch. ``curve`` is one
    metric's ``numbers.mean_curves``; ``label`` names a line from its ``by`` values."""
    thinning = numbers.fewer_executions(curve, by=by)
    if thinning.empty:
        return ""
    # One line only (nothing varied) has no name: "the line's later points".
    lines = [(f"{label({c: row[c] for c in by})} " if by else "")
             + f"from epoch {row['from_epoch']} ({row['left']} of {row['of']} at epoch "
               f"{row['last_epoch']})" for row in thinning.to_dict("records")]
    which = ("the later points of " + "; ".join(lines[:3])
             + ("; and more" if len(lines) > 3 else "")) if by else \
        f"the line's later points, {lines[0]},"
    return (" Some executions stopped sooner than others of their configuration (a space's "
            f"early stopping): {which} are means over the executions that trained on, not "
            "over every seed.")


def inactive_note(every: pd.DataFrame, drawn: pd.DataFrame, groups: list[str],
                  cell: list[str], *, what: str, sep: str = " / ") -> str:
    """What of ``every`` has no row in ``drawn`` because ``what`` is inactive (empty: a
    conditional hyperparameter whose condition is not met): whole lines or panels (values
    of ``groups``, written joined by ``sep``), " Not drawn: random (...)."; and, within
    those drawn, the configurations (values of ``cell``), " Left out of pretrained:
    frozen_blocks=inactive head_lr=0.01 (...)."; or "" for none."""
    def keys(table, columns):
        return {tuple(row) for row in table[columns].astype(str).itertuples(index=False)}

    lost = sorted(keys(every, groups) - keys(drawn, groups)) if groups else []
    note = ""
    if lost:
        names = ", ".join(sep.join(key) for key in lost)
        whose = "its" if len(lost) == 1 else "their"
        note += (f" Not drawn: {names} ({what} is inactive in all {whose} executions: a "
                 "conditional hyperparameter whose condition is not met).")
    kept = keys(drawn, groups) if groups else {()}
    configurations = every[[*groups, *cell]].drop_duplicates()
    shown = keys(drawn, [*groups, *cell])
    left = {}
    for row in configurations.to_dict("records"):
        group = tuple(str(row[c]) for c in groups)
        if group in kept and tuple(str(row[c]) for c in [*groups, *cell]) not in shown:
            left.setdefault(group, []).append(format_values({c: row[c] for c in cell}))
    for group, cells in sorted(left.items()):
        where = f" of {sep.join(group)}" if group else ""
        cells = sorted(set(cells))
        # A random search's inactive configurations can be dozens: the first three.
        named = ", ".join(cells[:3]) + (f" and {len(cells) - 3} more" if len(cells) > 3
                                        else "")
        note += f" Left out{where}: {named} ({what} inactive: nowhere to draw it)."
    return note


def trial_list(ids: pd.Series) -> str:
    """"trial 0004", "trials 0004 and 0007", "trials 0004, 0005 and 0007"."""
    ids = [str(i) for i in ids]
    if len(ids) == 1:
        return f"trial {ids[0]}"
    return f"trials {', '.join(ids[:-1])} and {ids[-1]}"
