"""Pure pandas: the numbers behind every figure and the report, from the tables alone.

Nothing here imports Keras. Each function takes the rows of ``epochs.csv`` or
``trials.csv`` and returns a small DataFrame (or a dataclass) that a drawing function or
the report turns into a picture or a sentence; the tests check these values directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

CONFIDENCE = 0.95


def t_interval(values) -> tuple[float, float, float]:
    """Mean and the two ends of its 95% Student-t confidence interval.

    One value gives an interval of zero width around it; none gives NaNs.
    """
    values = np.asarray([v for v in values if not pd.isna(v)], dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if len(values) == 1:
        return (mean, mean, mean)
    from scipy.stats import t

    half = float(t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * values.std(ddof=1)
                 / math.sqrt(len(values)))
    return (mean, mean - half, mean + half)


def mean_curves(epochs: pd.DataFrame, *, by: list[str], metric: str = "val_accuracy"
                ) -> pd.DataFrame:
    """Mean of ``metric`` over repeats per group and epoch, with a 95% interval.

    Returns:
        Columns ``*by, epoch, mean, low, high, n``.
    """
    rows = []
    for key, group in epochs.groupby([*by, "epoch"], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, low, high = t_interval(group[metric])
        rows.append({**dict(zip([*by, "epoch"], key)), "mean": mean, "low": low, "high": high,
                     "n": int(group[metric].notna().sum())})
    return pd.DataFrame(rows, columns=[*by, "epoch", "mean", "low", "high", "n"])


def varied(epochs: pd.DataFrame, candidates: list[str]) -> list[str]:
    """The candidate columns that take more than one value in the table."""
    return [c for c in candidates if c in epochs and epochs[c].nunique(dropna=True) > 1]


@dataclass(frozen=True)
class Gap:
    """Pretrained minus random accuracy, paired by seed, at one epoch."""

    epoch: int
    mean: float
    low: float
    high: float
    spread: float  # standard deviation of the paired differences across seeds
    pairs: int
    p_value: float
    pretrained: float
    random: float


def paired_init_differences(epochs: pd.DataFrame, *, metric: str = "val_accuracy",
                            a: str = "pretrained", b: str = "random") -> pd.DataFrame:
    """Per seed and epoch: ``metric`` of init ``a`` minus init ``b``, averaged over the
    other hyperparameters (only configurations run with both inits are paired).

    Returns:
        Columns ``seed, epoch, a, b, diff``.
    """
    if "init" not in epochs or not {a, b} <= set(epochs["init"].unique()):
        return pd.DataFrame(columns=["seed", "epoch", a, b, "diff"])
    others = [c for c in epochs.columns if c not in (
        "run_id", "trial_id", "repeat", "seed", "epoch", "init", "frozen_layers",
        "trainable_params", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds",
        "test_accuracy")]
    table = epochs.pivot_table(index=["seed", "epoch", *others], columns="init",
                               values=metric, aggfunc="mean", dropna=False)
    table = table[[a, b]].dropna()
    per_seed = table.groupby(level=["seed", "epoch"]).mean().reset_index()
    per_seed["diff"] = per_seed[a] - per_seed[b]
    return per_seed[["seed", "epoch", a, b, "diff"]]


def transfer_gain(epochs: pd.DataFrame, *, metric: str = "val_accuracy") -> pd.DataFrame:
    """Mean paired gain of pretrained over random per epoch, with a 95% interval.

    Returns:
        Columns ``epoch, mean, low, high, n`` (empty when both inits did not run).
    """
    diffs = paired_init_differences(epochs, metric=metric)
    rows = [{"epoch": epoch, **dict(zip(("mean", "low", "high"), t_interval(g["diff"]))),
             "n": len(g)} for epoch, g in diffs.groupby("epoch")]
    return pd.DataFrame(rows, columns=["epoch", "mean", "low", "high", "n"])


def init_gap(epochs: pd.DataFrame, *, epoch: int | None = None,
             metric: str = "val_accuracy") -> Gap | None:
    """The pretrained-vs-random gap at ``epoch`` (default: the last), paired by seed,
    with a 95% interval and a two-sided paired t-test; None if both inits did not run."""
    diffs = paired_init_differences(epochs, metric=metric)
    if diffs.empty:
        return None
    epoch = int(diffs["epoch"].max()) if epoch is None else epoch
    at = diffs[diffs["epoch"] == epoch]
    mean, low, high = t_interval(at["diff"])
    spread = float(at["diff"].std(ddof=1)) if len(at) > 1 else math.nan
    p_value = math.nan
    if len(at) > 1 and spread > 0:
        from scipy.stats import ttest_1samp

        p_value = float(ttest_1samp(at["diff"], 0.0).pvalue)
    return Gap(epoch=epoch, mean=mean, low=low, high=high, spread=spread, pairs=len(at),
               p_value=p_value, pretrained=float(at["pretrained"].mean()),
               random=float(at["random"].mean()))


def best_trials(trials: pd.DataFrame, *, by: str | None = None,
                objective: str = "best_val_accuracy") -> pd.DataFrame:
    """The best completed trial overall, or per value of ``by`` (such as ``init``)."""
    done = trials[trials["status"] == "COMPLETED"].dropna(subset=[objective])
    if done.empty:
        return done
    if by is None or by not in done:
        return done.sort_values(objective, ascending=False).head(1)
    index = done.groupby(by)[objective].idxmax()
    return done.loc[index].sort_values(objective, ascending=False)


def best_so_far(trials: pd.DataFrame, *, objective: str = "best_val_accuracy") -> pd.DataFrame:
    """The running best objective in trial order, with the cumulative seconds, per run
    when ``trials`` has a ``run_id`` column.

    Returns:
        Columns ``trial_number, trial_id, objective, best, elapsed_seconds`` (and
        ``run_id`` first when given).
    """
    if "run_id" in trials:
        parts = []
        for run_id, group in trials.groupby("run_id", sort=False):
            part = best_so_far(group.drop(columns="run_id"), objective=objective)
            part.insert(0, "run_id", run_id)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)
    ordered = trials.sort_values("trial_id").reset_index(drop=True)
    best = ordered[objective].where(ordered["status"] == "COMPLETED").cummax().ffill()
    return pd.DataFrame({
        "trial_number": np.arange(1, len(ordered) + 1),
        "trial_id": ordered["trial_id"],
        "objective": ordered[objective],
        "best": best,
        "elapsed_seconds": ordered["seconds"].fillna(0).cumsum(),
    })


def final_by(epochs: pd.DataFrame, *, by: list[str], metric: str = "val_accuracy"
             ) -> pd.DataFrame:
    """``metric`` at each execution's last epoch, then mean and 95% interval per group."""
    last = epochs.sort_values("epoch").groupby(["trial_id", "repeat"], sort=False).tail(1)
    rows = []
    for key, group in last.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        mean, low, high = t_interval(group[metric])
        rows.append({**dict(zip(by, key)), "mean": mean, "low": low, "high": high,
                     "n": len(group)})
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])


def execution_summary(epochs: pd.DataFrame, *, by: list[str], metric: str = "val_accuracy"
                      ) -> pd.DataFrame:
    """Final and best ``metric`` of each execution, then mean and 95% interval per group.

    Returns:
        Columns ``*by, measure, mean, low, high, n`` with ``measure`` "final" or "best".
    """
    ordered = epochs.sort_values("epoch").groupby(["run_id", "trial_id", "repeat"], sort=False)
    per_execution = ordered.agg(final=(metric, "last"), best=(metric, "max"),
                                **{k: (k, "first") for k in by}).reset_index(drop=True)
    rows = []
    for measure in ("final", "best"):
        for key, group in per_execution.groupby(by, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            mean, low, high = t_interval(group[measure])
            rows.append({**dict(zip(by, key)), "measure": measure, "mean": mean, "low": low,
                         "high": high, "n": len(group)})
    return pd.DataFrame(rows, columns=[*by, "measure", "mean", "low", "high", "n"])


def heatmap_table(epochs: pd.DataFrame, *, rows: str, cols: str,
                  metric: str = "val_accuracy") -> pd.DataFrame:
    """Mean final ``metric`` over executions, ``rows`` x ``cols`` (a pivot table)."""
    last = epochs.sort_values("epoch").groupby(["run_id", "trial_id", "repeat"]).tail(1)
    return last.pivot_table(index=rows, columns=cols, values=metric, aggfunc="mean")


def generalisation_gap(epochs: pd.DataFrame, trial_ids: list[str]) -> pd.DataFrame:
    """Training minus validation accuracy per epoch for the given trials, over repeats.

    Returns:
        Columns ``trial_id, epoch, mean, low, high, n``.
    """
    chosen = epochs[epochs["trial_id"].isin(trial_ids)].copy()
    chosen["gap"] = chosen["accuracy"] - chosen["val_accuracy"]
    return mean_curves(chosen, by=["trial_id"], metric="gap")


def phase_boundaries(epochs: pd.DataFrame) -> list[float]:
    """Epochs (as x positions between two epochs) where ``phase`` changes."""
    if "phase" not in epochs or epochs["phase"].isna().all():
        return []
    firsts = epochs.groupby("phase")["epoch"].min().sort_index()
    return [float(e) - 0.5 for e in firsts.iloc[1:]]
