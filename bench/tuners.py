"""KerasTuner's search algorithms by name, and what a space's hyperparameters allow."""

from __future__ import annotations

import math

from bench.errors import BenchError, unknown_name

TUNERS = {
    "grid": "GridSearch: every combination, in order (default for finite spaces)",
    "random": "RandomSearch: --max-trials random combinations",
    "bayesian": "BayesianOptimization: a Gaussian process proposes --max-trials combinations",
    "hyperband": "Hyperband: many short trials, the best continue (--max-epochs)",
}
OBJECTIVE = "val_accuracy"
DEFAULT_MAX_TRIALS = 10  # for the tuners that sample (random, bayesian)


def _values(parameter) -> list | None:
    """The finite list of values a hyperparameter takes, or None if it is continuous."""
    # KerasTuner's Int and Float list ten evenly spaced samples when they have no step,
    # which a grid must not mistake for the whole range.
    if getattr(parameter, "step", 0) is None:
        return None
    return list(parameter.values)


def grid_size(hp) -> int | None:
    """Number of combinations of a finite space, or None when any is continuous."""
    sizes = [_values(p) for p in hp.space]
    if any(v is None for v in sizes):
        return None
    return math.prod(len(v) for v in sizes)


def choose_tuner(name: str | None, hp) -> str:
    """The tuner to use: the given name, or grid for a finite space and random otherwise."""
    if name is None:
        return "grid" if grid_size(hp) is not None else "random"
    if name not in TUNERS:
        raise unknown_name("tuner", name, list(TUNERS))
    if name == "grid" and grid_size(hp) is None:
        continuous = [p.name for p in hp.space if _values(p) is None]
        raise BenchError(
            f"grid search needs finite hyperparameters, but {', '.join(continuous)} "
            "is continuous; give it a step (hp.Float(..., step=...)) in a copy of the space, "
            "or use --tuner random, bayesian or hyperband"
        )
    return name


def planned_trials(name: str, hp, *, max_trials: int | None) -> int | None:
    """How many trials the search will run, or None where the tuner decides (Hyperband)."""
    if name == "hyperband":
        return None
    if name == "grid":
        size = grid_size(hp)
        return min(size, max_trials) if max_trials else size
    return max_trials or DEFAULT_MAX_TRIALS


def make_oracle(name: str, *, hyperparameters, max_trials: int | None, seed: int,
                max_epochs: int):
    """Builds the KerasTuner oracle for ``name`` over the declared ``hyperparameters``."""
    import keras_tuner

    common = dict(
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        hyperparameters=hyperparameters,
        tune_new_entries=False,
        allow_new_entries=False,
        seed=seed,
    )
    if name == "grid":
        return keras_tuner.oracles.GridSearchOracle(max_trials=max_trials, **common)
    if name == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=max_trials or DEFAULT_MAX_TRIALS,
                                                      **common)
    if name == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(
            max_trials=max_trials or DEFAULT_MAX_TRIALS, **common)
    if name == "hyperband":
        return keras_tuner.oracles.HyperbandOracle(max_epochs=max_epochs, factor=3, **common)
    raise unknown_name("tuner", name, list(TUNERS))
