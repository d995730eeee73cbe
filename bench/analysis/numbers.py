"""Pure pandas: the numbers behind every figure and the report, from the tables alone.

Nothing here imports Keras. Each function takes the rows of ``epochs.csv`` or
``trials.csv`` and returns a small DataFrame (or a dataclass) that a drawing function or
the report turns into a picture or a sentence; the tests check these values directly.

Two rules hold everywhere. Only complete executions count: ``complete_rows`` keeps the
rows of trials that finished, so a failed, diverged or interrupted trial never feeds a
mean. And every interval is over the repeats (seeds) of one configuration: where a
figure cannot show every varied hyperparameter, ``best_configurations`` keeps the best
configuration per shown combination instead of averaging different ones together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.analysis.formatting import distinguishing, format_value

CONFIDENCE = 0.95
#: The initialisation every other one is compared against.
BASELINE_INIT = "random"
#: Columns of ``epochs.csv`` that are not hyperparameters.
NOT_HYPERPARAMETERS = ("run_id", "trial_id", "repeat", "seed", "epoch", "frozen_layers",
                       "trainable_params", "loss", "accuracy", "val_loss", "val_accuracy",
                       "epoch_seconds", "test_accuracy", "phase")
#: Columns the analysis adds to tables that hold the hyperparameters' columns.
ANALYSIS_COLUMNS = ("comparison", "configuration", "configurations", "configurations_run",
                    "diff", "gap", "mean", "low", "high", "n", "measure", "metric", "epochs",
                    "by_trial_id", "by_epochs", "score", "index", "level_0", "_failed")
#: Accuracy intervals are clipped to what accuracy can be. Differences (the gap) are not:
#: the headline interval is Student's t as scipy gives it, whatever its ends.
ACCURACY_BOUNDS = (0.0, 1.0)


def t_interval(values, *, bounds: tuple[float, float] | None = None
               ) -> tuple[float, float, float]:
    """Mean and the two ends of its 95% Student-t confidence interval.

    One value has no interval (its ends are NaN: Student's t has no degrees of freedom,
    and a zero-width interval would read as certainty); none gives NaNs. ``bounds``
    clips the ends to the range the quantity can take (accuracy lies in [0, 1]).
    """
    values = np.asarray([v for v in values if not pd.isna(v)], dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if len(values) == 1:
        return (mean, math.nan, math.nan)
    from scipy.stats import t

    half = float(t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * values.std(ddof=1)
                 / math.sqrt(len(values)))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return (mean, low, high)


def _groups(table: pd.DataFrame, by: list[str]):
    """(key dict, group) pairs; inactive (empty) values form a group of their own."""
    if not by:
        yield {}, table
        return
    for key, group in table.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key)), group


INACTIVE = "__inactive__"


def inactive_as(table: pd.DataFrame, columns: list[str], marker: str = INACTIVE
                ) -> pd.DataFrame:
    """``table`` with the empty values of ``columns`` (a conditional hyperparameter that
    was not active) replaced by ``marker``, so that they group and merge as one value."""
    return table.assign(**{c: table[c].astype(object).where(table[c].notna(), marker)
                           for c in columns})


def complete_rows(epochs: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """The rows of executions that finished: those of trials whose status is COMPLETED.

    A failed trial (an error, a loss that became NaN) and a trial cut short by a kill or
    an interrupt have rows in ``epochs.csv``, because rows are written as epochs end, but
    no final numbers: they never enter a mean, an interval or a gap.
    """
    if trials.empty or "status" not in trials:
        return epochs.iloc[0:0]
    done = trials[trials["status"] == "COMPLETED"]
    keys = ["run_id", "trial_id"] if "run_id" in trials and "run_id" in epochs else ["trial_id"]
    chosen = done[keys].drop_duplicates()
    return epochs.merge(chosen, on=keys, how="inner")[epochs.columns]


def longest_executions(epochs: pd.DataFrame, *, configuration: list[str]
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of each (configuration, seed)'s longest execution only.

    Hyperband trains a configuration it promotes again, from scratch with the same seeds,
    for more epochs: the same execution twice, its first epochs in both. Counting both
    would count those epochs twice and narrow every interval. Per configuration (the
    ``configuration`` columns) and seed, the trial that trained longest is kept (the
    first such trial on a tie).

    Returns:
        ``(rows, superseded)``: the kept rows, and one row per dropped execution with
        columns ``trial_id, epochs, by_trial_id, by_epochs, seed`` (and ``run_id``).
    """
    columns = ["trial_id", "epochs", "by_trial_id", "by_epochs", "seed"]
    run = ["run_id"] if "run_id" in epochs else []
    columns = [*run, *columns]
    keys = [*run, *[c for c in configuration if c in epochs], "seed"]
    if epochs.empty:
        return epochs, pd.DataFrame(columns=columns)
    table = inactive_as(epochs, keys).reset_index(drop=True)
    length = (table.groupby([*keys, "trial_id"], sort=False)["epoch"].max()
              .reset_index(name="epochs").sort_values(["epochs", "trial_id"],
                                                      ascending=[False, True]))
    longest = length.drop_duplicates(keys)
    if len(longest) == len(length):
        return epochs, pd.DataFrame(columns=columns)
    dropped = length.drop(longest.index).merge(
        longest.rename(columns={"trial_id": "by_trial_id", "epochs": "by_epochs"}), on=keys)
    kept = table.reset_index().merge(longest[[*keys, "trial_id"]], on=[*keys, "trial_id"])
    rows = epochs.iloc[sorted(kept["index"])]
    return rows, dropped[columns].sort_values("trial_id").reset_index(drop=True)


def mean_curves(epochs: pd.DataFrame, *, by: list[str], metric: str = "val_accuracy",
                bounds: tuple[float, float] | None = ACCURACY_BOUNDS) -> pd.DataFrame:
    """Mean of ``metric`` over repeats per group and epoch, with a 95% interval.

    Give ``by`` every varied hyperparameter (or keep one configuration per group with
    ``best_configurations``): the interval is then over the repeats of one configuration.

    Returns:
        Columns ``*by, epoch, mean, low, high, n``.
    """
    rows = []
    for key, group in _groups(epochs, [*by, "epoch"]):
        mean, low, high = t_interval(group[metric], bounds=bounds)
        rows.append({**key, "mean": mean, "low": low, "high": high,
                     "n": int(group[metric].notna().sum())})
    return pd.DataFrame(rows, columns=[*by, "epoch", "mean", "low", "high", "n"])


def fewer_executions(curve: pd.DataFrame, *, by: list[str]) -> pd.DataFrame:
    """The lines of ``curve`` (``mean_curves``' output, grouped ``by``) whose later epochs
    average fewer executions than their most: the first such epoch, the executions left at
    the line's last epoch and the most it had.

    Returns:
        Columns ``*by, from_epoch, left, of, last_epoch``, one row per such line.
    """
    rows = []
    for key, line in _groups(curve, by):
        line = line.sort_values("epoch")
        most = int(line["n"].max())
        fewer = line[line["n"] < most]
        if not fewer.empty:
            rows.append({**key, "from_epoch": int(fewer["epoch"].iloc[0]),
                         "left": int(line["n"].iloc[-1]), "of": most,
                         "last_epoch": int(line["epoch"].iloc[-1])})
    return pd.DataFrame(rows, columns=[*by, "from_epoch", "left", "of", "last_epoch"])


def varied(epochs: pd.DataFrame, candidates: list[str]) -> list[str]:
    """The candidate columns that take more than one value (inactive counts as one)."""
    return [c for c in candidates if c in epochs and epochs[c].nunique(dropna=False) > 1]


def last_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each execution's last row."""
    keys = [k for k in ("run_id", "trial_id", "repeat") if k in epochs]
    return epochs.sort_values("epoch").groupby(keys, sort=False, dropna=False).tail(1)


def configuration_scores(epochs: pd.DataFrame, *, configuration: list[str],
                         metric: str = "val_accuracy") -> pd.DataFrame:
    """Mean final ``metric`` of each configuration over its repeats.

    Returns:
        Columns ``*configuration, score``.
    """
    last = last_epochs(epochs)
    rows = [{**key, "score": float(group[metric].mean())}
            for key, group in _groups(last, configuration)]
    return pd.DataFrame(rows, columns=[*configuration, "score"])


def best_configurations(epochs: pd.DataFrame, *, keep: list[str], over: list[str],
                        metric: str = "val_accuracy") -> pd.DataFrame:
    """The rows of one configuration per combination of ``keep``: among the values of
    ``over``, the one with the best mean final ``metric``.

    A figure that shows ``keep`` but not ``over`` draws these rows, so each line and each
    interval belongs to one configuration run with several seeds. Where several values of
    ``over`` tie at the best (within ``TIE_RTOL``), the first in sorted order is drawn,
    and the frame's ``attrs["ties"]`` lists each such tie: ``{"keep": {...}, "over":
    [{...}, ...], "score": s}``, the drawn values first.
    """
    if not over:
        return epochs
    scores = configuration_scores(epochs, configuration=[*keep, *over], metric=metric)
    chosen, ties = [], []
    for key, group in _groups(scores, keep):
        if group["score"].isna().all():
            chosen.append(group.iloc[0])
            continue
        top = group["score"].max()
        tied = group[np.isclose(group["score"], top, rtol=TIE_RTOL, atol=0)]
        chosen.append(tied.iloc[0])
        if len(tied) > 1:
            ties.append({"keep": key, "over": tied[over].to_dict("records"),
                         "score": float(top)})
    chosen = pd.DataFrame(chosen)[[*keep, *over]]
    key = [*keep, *over]
    left, right = inactive_as(epochs, key), inactive_as(chosen, key)
    index = left.reset_index().merge(right, on=key, how="inner")["index"]
    rows = epochs.loc[sorted(index)]
    rows.attrs = {**epochs.attrs, "ties": ties}
    return rows


@dataclass(frozen=True)
class Gap:
    """One initialisation minus ``random``, paired by seed, at one epoch."""

    init: str
    baseline: str
    epoch: int
    mean: float
    low: float
    high: float
    spread: float  # standard deviation of the paired differences across seeds
    pairs: int  # seeds
    configurations: int  # configurations run with both inits, averaged per seed
    p_value: float
    init_accuracy: float
    baseline_accuracy: float
    with_init: dict = field(default_factory=dict)  # columns that went with init, per init
    #: Configurations that ran with either init at this epoch (more than ``configurations``
    #: where some ran with one init only, or not at every seed), and the paired ones' values.
    configurations_run: int = 0
    paired: tuple = ()
    #: The last epoch either init's executions reached: after ``epoch`` where executions
    #: stopped sooner at some seeds, so that no configuration has every seed paired.
    last_epoch: int = 0
    #: Configurations that ran with either init at any epoch: more than
    #: ``configurations_run`` where some stopped before ``epoch`` (Hyperband's first rounds).
    configurations_any_epoch: int = 0
    #: Configurations that ran with both inits at every seed, at their first epoch: more
    #: than ``configurations`` where some of their executions stopped before ``epoch``.
    configurations_both: int = 0
    #: Configurations that ran (with either init, at any epoch) but are not paired at
    #: ``epoch``: what the gap leaves out.
    left_out: tuple = ()


def _configuration_columns(epochs: pd.DataFrame, pair_on: list[str] | None = None
                           ) -> list[str]:
    if pair_on is not None:
        return [c for c in pair_on if c in epochs and c != "init"]
    return [c for c in epochs.columns if c not in NOT_HYPERPARAMETERS and c != "init"]


def columns_with_init(epochs: pd.DataFrame, *, pair_on: list[str] | None, inits: tuple[str, str]
              ) -> dict[str, dict]:
    """Recorded columns besides ``pair_on`` that differ between the two inits, one value
    per init (such as a body learning-rate scale a space derives from init): part of
    what is compared. ``{column: {init: value}}``."""
    if pair_on is None or "init" not in epochs:
        return {}
    rows = epochs[epochs["init"].isin(inits)]
    found = {}
    for column in rows.columns:
        if column in NOT_HYPERPARAMETERS or column == "init" or column in pair_on:
            continue
        values = rows[column].astype(object).where(rows[column].notna(), None)
        if (values.groupby(rows["init"]).nunique(dropna=False) == 1).all() and \
                values.nunique(dropna=False) > 1:
            found[column] = {init: values[rows["init"] == init].iloc[0] for init in inits}
    return found


def paired_init_differences(epochs: pd.DataFrame, *, metric: str = "val_accuracy",
                            a: str = "pretrained", b: str = BASELINE_INIT,
                            pair_on: list[str] | None = None) -> pd.DataFrame:
    """Per seed and epoch: ``metric`` of init ``a`` minus init ``b``.

    Only configurations (values of the other hyperparameters) that ran with both inits
    at every seed of the study are paired at an epoch, and each seed's difference is the
    mean over those same configurations, so no seed is compared on other configurations
    than another, and no epoch on fewer seeds (an execution that stopped sooner, by a
    space's early stopping, leaves its configuration out of the epochs after it).
    ``pair_on`` names the hyperparameters a configuration is made of (the space's
    declared ones besides init); by default every recorded column that is not a metric.

    Returns:
        Columns ``seed, epoch, a, b, diff, configurations, configurations_run``: the
        configurations paired, and those that ran with either init at that epoch. The
        frame's ``attrs["paired"]`` gives, per epoch, the paired configurations' values;
        ``attrs["last_epoch"]`` the last epoch either init reached, and
        ``attrs["configurations_any_epoch"]`` the configurations run at any epoch.
    """
    columns = ["seed", "epoch", a, b, "diff", "configurations", "configurations_run"]
    if "init" not in epochs or not {a, b} <= set(epochs["init"].dropna().unique()):
        return pd.DataFrame(columns=columns)
    others = _configuration_columns(epochs, pair_on)
    rows = epochs[epochs["init"].isin([a, b])]
    rows = inactive_as(rows, others)
    table = (rows.groupby([*others, "seed", "epoch", "init"], dropna=False)[metric].mean()
             .unstack("init"))
    table = table[[a, b]].dropna().reset_index()
    if table.empty:
        return pd.DataFrame(columns=columns)
    # Every seed of the study, not those left at an epoch: an execution a space's early
    # stopping ended sooner would otherwise drop its seed from the later epochs' pairs,
    # unannounced, and keep the seeds that trained on (a survivor's comparison).
    every_seed = rows["seed"].nunique()
    parts, paired = [], {}
    for epoch, at in table.groupby("epoch"):
        seeds = at.groupby(others, dropna=False)["seed"].transform("nunique") if others else \
            pd.Series(at["seed"].nunique(), index=at.index)
        full = at[seeds == every_seed]
        if full.empty:
            continue
        per_seed = full.groupby("seed")[[a, b]].mean().reset_index()
        per_seed["epoch"] = epoch
        per_seed["configurations"] = (full.groupby(others, dropna=False).ngroups
                                      if others else 1)
        per_seed["configurations_run"] = (rows[rows["epoch"] == epoch]
                                          .groupby(others, dropna=False).ngroups
                                          if others else 1)
        paired[int(epoch)] = full[others].drop_duplicates().to_dict("records")
        parts.append(per_seed)
    if not parts:
        return pd.DataFrame(columns=columns)
    per_seed = pd.concat(parts, ignore_index=True)
    per_seed["diff"] = per_seed[a] - per_seed[b]
    result = per_seed[columns]
    result.attrs["paired"] = paired
    result.attrs["last_epoch"] = int(rows["epoch"].max())
    result.attrs["configurations_any_epoch"] = (rows.groupby(others, dropna=False).ngroups
                                                if others else 1)
    result.attrs["ran"] = (rows[others].drop_duplicates().to_dict("records")
                           if others else [{}])
    return result


def compared_inits(epochs: pd.DataFrame) -> list[str]:
    """The inits that ran besides ``random``, each to be compared with it."""
    if "init" not in epochs:
        return []
    inits = set(epochs["init"].dropna().unique())
    if BASELINE_INIT not in inits:
        return []
    order = ["pretrained", "imagenet"]
    others = sorted(inits - {BASELINE_INIT}, key=lambda i: (order.index(i) if i in order
                                                            else len(order), i))
    return others


def transfer_gain(epochs: pd.DataFrame, *, metric: str = "val_accuracy",
                  pair_on: list[str] | None = None) -> pd.DataFrame:
    """Mean paired gain of each init over random per epoch, with a 95% interval
    (``pair_on`` as in ``paired_init_differences``).

    Returns:
        Columns ``comparison, epoch, mean, low, high, n`` (``comparison`` such as
        "pretrained - random"); empty when nothing could be paired.
    """
    rows = []
    for init in compared_inits(epochs):
        diffs = paired_init_differences(epochs, metric=metric, a=init, pair_on=pair_on)
        for epoch, group in diffs.groupby("epoch"):
            mean, low, high = t_interval(group["diff"])
            rows.append({"comparison": f"{init} - {BASELINE_INIT}", "epoch": epoch,
                         "mean": mean, "low": low, "high": high, "n": len(group)})
    return pd.DataFrame(rows, columns=["comparison", "epoch", "mean", "low", "high", "n"])


#: Paired differences this close are one difference: an accuracy is a count of images
#: over a split (1/N apart, over 1e-6 for any split under a million images), summed in
#: float32, so two equal counts can read 1e-7 apart.
SAME_DIFFERENCE = 1e-6


def init_gap(epochs: pd.DataFrame, *, init: str = "pretrained", epoch: int | None = None,
             metric: str = "val_accuracy", pair_on: list[str] | None = None) -> Gap | None:
    """The gap of ``init`` over random at ``epoch`` (default: the last), paired by seed,
    with a 95% interval and a two-sided paired t-test; None if nothing could be paired.
    ``pair_on`` as in ``paired_init_differences``."""
    diffs = paired_init_differences(epochs, metric=metric, a=init, pair_on=pair_on)
    if diffs.empty:
        return None
    epoch = int(diffs["epoch"].max()) if epoch is None else epoch
    at = diffs[diffs["epoch"] == epoch]
    if at.empty:
        return None
    values = at["diff"].to_numpy(dtype=float)
    if len(values) > 1 and np.ptp(values) <= SAME_DIFFERENCE:
        # One difference at every seed: its spread is 0, and a t-test undefined, not the
        # p = 3e-8 that float32 rounding (sd 1e-8) would give.
        mean = float(values.mean())
        low, high, spread = mean, mean, 0.0
    else:
        mean, low, high = t_interval(values)
        spread = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    p_value = math.nan
    if len(at) > 1 and spread > 0:
        from scipy.stats import ttest_1samp

        p_value = float(ttest_1samp(at["diff"], 0.0).pvalue)
    return Gap(init=init, baseline=BASELINE_INIT, epoch=epoch, mean=mean, low=low, high=high,
               spread=spread, pairs=len(at), configurations=int(at["configurations"].iloc[0]),
               p_value=p_value, init_accuracy=float(at[init].mean()),
               baseline_accuracy=float(at[BASELINE_INIT].mean()),
               with_init=columns_with_init(epochs, pair_on=pair_on,
                                           inits=(init, BASELINE_INIT)),
               configurations_run=int(at["configurations_run"].iloc[0]),
               paired=tuple(diffs.attrs["paired"][epoch]),
               last_epoch=diffs.attrs["last_epoch"],
               configurations_any_epoch=diffs.attrs["configurations_any_epoch"],
               # Executions record epochs 1..n: a configuration paired at any epoch is
               # paired at the first, so the most paired at an epoch is every such one.
               configurations_both=max(len(v) for v in diffs.attrs["paired"].values()),
               left_out=tuple(c for c in diffs.attrs["ran"]
                              if c not in diffs.attrs["paired"][epoch]))


def init_gaps(epochs: pd.DataFrame, *, metric: str = "val_accuracy",
              pair_on: list[str] | None = None) -> list[Gap]:
    """``init_gap`` at the last epoch for every init that ran besides random."""
    gaps = [init_gap(epochs, init=init, metric=metric, pair_on=pair_on)
            for init in compared_inits(epochs)]
    return [gap for gap in gaps if gap is not None]


def why_no_gap(epochs: pd.DataFrame, *, pair_on: list[str] | None = None) -> str:
    """Why ``init_gaps`` is empty, and what to run instead, as one sentence. ``pair_on``:
    the configuration's hyperparameters, as ``init_gap`` takes them."""
    if epochs.empty:
        return "no execution completed, so there is no gap between initialisations."
    inits = sorted(epochs["init"].dropna().unique()) if "init" in epochs else []
    if not inits:
        return "init was not varied, so there is no gap between initialisations."
    if len(inits) == 1:
        return (f"every complete execution used init {inits[0]}, so there is no gap between "
                "initialisations.")
    if BASELINE_INIT not in inits:
        return (f"init took the values {', '.join(inits)} but never {BASELINE_INIT}, so there "
                f"is no gap against {BASELINE_INIT} initialisation; add {BASELINE_INIT!r} to "
                "the space's init choices.")
    grid = ("run a grid over init (--tuner grid) or a space that varies init alone "
            "(--space init)")
    apart, conditional = _apart_by_init(epochs, pair_on or [])
    if apart:
        advice = ("declare that hyperparameter for every init (not in a conditional scope "
                  "of init) to compare them" if conditional else
                  "a random or Bayesian search seldom draws a value twice (from a range "
                  "without a step, never): declare it as a Choice or a range with a step "
                  "and run a grid (--tuner grid), or vary init alone (--space init)")
        return (f"init took the values {', '.join(inits)}, but no configuration ran with "
                f"both random and another init: {'; '.join(apart)}, so nothing can be paired; "
                f"{advice}.")
    seeds = _seeds_apart(epochs, [c for c in pair_on or [] if c in epochs and c != "init"])
    if seeds:
        return (f"init took the values {', '.join(inits)}, and configurations ran with both "
                f"random and another init, but at other seeds (seeds {seeds}), so nothing can "
                "be paired; run every init with the same --seed and --repeats.")
    return (f"init took the values {', '.join(inits)}, but no configuration of the other "
            "hyperparameters ran with both random and another init at the same seeds, so "
            f"nothing can be paired; {grid}.")


def _seeds_apart(epochs: pd.DataFrame, columns: list[str]) -> str | None:
    """Where configurations ran under random and another init, but the two never at one
    seed: "pretrained 1, 2; random 4, 5"; else None."""
    def configurations(frame: pd.DataFrame) -> set:
        return set(frame[columns].astype(str).itertuples(index=False)) if columns else {()}

    baseline = epochs[epochs["init"] == BASELINE_INIT]
    others = epochs[epochs["init"].notna() & (epochs["init"] != BASELINE_INIT)]
    if not configurations(baseline) & configurations(others):
        return None
    if set(baseline["seed"]) & set(others["seed"]):
        return None
    parts = [f"{init} {', '.join(str(int(s)) for s in sorted(group['seed'].unique()))}"
             for init, group in pd.concat([baseline, others]).groupby("init", sort=True)]
    return "; ".join(parts)


def _apart_by_init(epochs: pd.DataFrame, columns: list[str]) -> tuple[list[str], bool]:
    """For each of ``columns`` whose values under random share none with those under
    another init: "frozen_blocks took 2, 4 with pretrained and none (inactive) with
    random"; and whether one of them is inactive under an init (a conditional scope)."""
    said, conditional = [], False
    for column in [c for c in columns if c in epochs]:
        values = {init: set(inactive_as(group, [column])[column])
                  for init, group in epochs.groupby("init")}
        baseline = values.get(BASELINE_INIT, set())
        for init, mine in values.items():
            if init != BASELINE_INIT and not mine & baseline:
                said.append(f"{column} took {_values_text(mine)} with {init} and "
                            f"{_values_text(baseline)} with {BASELINE_INIT}")
                conditional |= INACTIVE in mine | baseline
    return said, conditional


def _values_text(values: set) -> str:
    numbers = distinguishing(v for v in values if isinstance(v, float))
    return ", ".join(sorted("none (inactive)" if v == INACTIVE else numbers.get(v)
                            or format_value(v) for v in values))


#: Scores this close are one score: epochs.csv keeps each accuracy as a float32
#: (correct / images, off by up to 6e-8 of itself), so two trials with the same count of
#: correct answers, split differently over the repeats, differ by about 1e-8 in their
#: means; one image in a million evaluations (validation images x repeats) is 1e-6.
TIE_RTOL = 2.5e-7


def best_trials(trials: pd.DataFrame, *, by: str | None = None,
                objective: str = "best_val_accuracy") -> pd.DataFrame:
    """The best completed trial overall, or per value of ``by`` (such as ``init``); per
    run too where ``trials`` holds several (their spaces, data and epochs can differ).
    Trials tied at the best objective are all kept: accuracies are counts over the
    validation images, so two configurations often score alike to the last digit, and
    naming one of them best would pick by trial order."""
    done = trials[trials["status"] == "COMPLETED"].dropna(subset=[objective])
    if done.empty:
        return done
    keys = ["run_id"] if "run_id" in done and done["run_id"].nunique() > 1 else []
    keys += [by] if by is not None and by in done else []
    top = (done.groupby(keys, dropna=False)[objective].transform("max") if keys
           else pd.Series(done[objective].max(), index=done.index))
    tied = done[np.isclose(done[objective], top, rtol=TIE_RTOL, atol=0)]
    # Runs in the order given, within a run the best group first, tied trials in trial
    # order.
    ranked = tied.assign(_top=top[tied.index])
    order = list(keys)
    if "run_id" in keys:
        position = {run: i for i, run in enumerate(pd.unique(done["run_id"]))}
        ranked = ranked.assign(_run=ranked["run_id"].map(position))
        order[0] = "_run"
    return ranked.sort_values(
        [*order[:-1], "_top", *order[-1:], "trial_id"],
        ascending=[True] * (len(keys) - 1) + [False] + [True] * len(keys[-1:]) + [True]
    ).drop(columns=[c for c in ("_top", "_run") if c in ranked])


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
    score = ordered[objective].where(ordered["status"] == "COMPLETED")
    best = score.cummax().ffill()
    return pd.DataFrame({
        "trial_number": np.arange(1, len(ordered) + 1),
        "trial_id": ordered["trial_id"],
        "objective": score,
        "best": best,
        "elapsed_seconds": ordered["seconds"].fillna(0).cumsum(),
    })


def execution_summary(epochs: pd.DataFrame, *, by: list[str], metric: str = "val_accuracy",
                      bounds: tuple[float, float] | None = ACCURACY_BOUNDS) -> pd.DataFrame:
    """Final and best ``metric`` of each execution, then mean and 95% interval per group.

    Returns:
        Columns ``*by, measure, mean, low, high, n`` with ``measure`` "final" or "best".
    """
    keys = [k for k in ("run_id", "trial_id", "repeat") if k in epochs]
    ordered = epochs.sort_values("epoch").groupby(keys, sort=False, dropna=False)
    per_execution = ordered.agg(final=(metric, "last"), best=(metric, "max"),
                                **{k: (k, "first") for k in by}).reset_index(drop=True)
    rows = []
    for measure in ("final", "best"):
        for key, group in _groups(per_execution, by):
            mean, low, high = t_interval(group[measure], bounds=bounds)
            rows.append({**key, "measure": measure, "mean": mean, "low": low,
                         "high": high, "n": len(group)})
    return pd.DataFrame(rows, columns=[*by, "measure", "mean", "low", "high", "n"])


def heatmap_table(epochs: pd.DataFrame, *, rows: str, cols: str,
                  metric: str = "val_accuracy") -> pd.DataFrame:
    """Mean final ``metric`` over executions, ``rows`` x ``cols`` (a pivot table)."""
    return last_epochs(epochs).pivot_table(index=rows, columns=cols, values=metric,
                                           aggfunc="mean")


def generalisation_gap(epochs: pd.DataFrame, trial_ids: list[str]) -> pd.DataFrame:
    """Training minus validation accuracy per epoch for the given trials, over repeats.

    Returns:
        Columns ``trial_id, epoch, mean, low, high, n``.
    """
    chosen = epochs[epochs["trial_id"].isin(trial_ids)].copy()
    chosen["gap"] = chosen["accuracy"] - chosen["val_accuracy"]
    return mean_curves(chosen, by=["trial_id"], metric="gap", bounds=None)


def phase_boundaries(epochs: pd.DataFrame) -> list[float]:
    """Epochs (as x positions between two epochs) where ``phase`` changes."""
    if "phase" not in epochs or epochs["phase"].isna().all():
        return []
    firsts = epochs.groupby("phase")["epoch"].min().sort_index()
    return [float(e) - 0.5 for e in firsts.iloc[1:]]
