"""KerasTuner's search algorithms by name, and what a space's hyperparameters allow."""

from __future__ import annotations

import functools
import math

from bench.analysis.formatting import counted
from bench.errors import BenchError, unknown_name

TUNERS = {
    "grid": "GridSearch: every combination, in order (default for finite spaces)",
    "random": "RandomSearch: --max-trials random combinations",
    "bayesian": "BayesianOptimization: a Gaussian process proposes --max-trials combinations",
    "hyperband": "Hyperband: many short trials, the best continue (--max-epochs)",
}
OBJECTIVE = "val_accuracy"
DEFAULT_MAX_TRIALS = 10  # for the tuners that sample (random, bayesian)


#: Hyperband's reduction factor: each round keeps a third of the trials, three times longer.
HYPERBAND_FACTOR = 3


def _hyperband_brackets(max_epochs: int) -> int:
    """How many brackets KerasTuner's ``HyperbandOracle`` makes at ``max_epochs``."""
    epochs, brackets = float(max_epochs), 0
    while epochs >= 1:
        epochs /= HYPERBAND_FACTOR
        brackets += 1
    return brackets


def hyperband_shortest_trial(max_epochs: int) -> int:
    """The epochs of Hyperband's shortest trials at ``max_epochs``, as KerasTuner's
    ``HyperbandOracle`` schedules them (its brackets, its most aggressive first round)."""
    return math.ceil(max_epochs / HYPERBAND_FACTOR ** (_hyperband_brackets(max_epochs) - 1))


def _values(parameter) -> list | None:
    """The finite list of values a hyperparameter takes, or None if it is continuous."""
    # KerasTuner's Int and Float list ten evenly spaced samples when they have no step,
    # which a grid must not mistake for the whole range.
    if getattr(parameter, "step", 0) is None:
        return None
    return list(parameter.values)


def _active(parameter, values: dict) -> bool:
    return all(condition.is_active(values) for condition in parameter.conditions)


def grid_size(hp) -> int | None:
    """Number of combinations of a finite space, or None when any is continuous.

    A conditional hyperparameter (declared in ``hp.conditional_scope``) multiplies only
    the combinations in which its condition holds, as KerasTuner's grid runs them.
    """
    parameters = list(hp.space)
    sizes = [_values(p) for p in parameters]
    if any(v is None for v in sizes):
        return None
    if not any(p.conditions for p in parameters):
        return math.prod(len(v) for v in sizes)

    def count(index: int, values: dict) -> int:
        if index == len(parameters):
            return 1
        parameter = parameters[index]
        if not _active(parameter, values):
            return count(index + 1, values)
        return sum(count(index + 1, {**values, parameter.name: value})
                   for value in sizes[index])

    return count(0, {})


def default_initial_points(hp) -> int:
    """KerasTuner's Bayesian oracle samples this many trials at random before its
    Gaussian process proposes any: three per hyperparameter, at least three."""
    return max(3 * len(hp.space), 3)


def check_tuner_name(name: str | None) -> None:
    """Refuses a tuner name KerasTuner does not have here (None: the default is chosen)."""
    if name is not None and name not in TUNERS:
        raise unknown_name("tuner", name, list(TUNERS))


def choose_tuner(name: str | None, hp) -> str:
    """The tuner to use: the given name, or grid for a finite space and random otherwise."""
    if name is None:
        return "grid" if grid_size(hp) is not None else "random"
    check_tuner_name(name)
    if name == "grid" and grid_size(hp) is None:
        continuous = [p.name for p in hp.space if _values(p) is None]
        raise BenchError(
            f"grid search needs finite hyperparameters, but {', '.join(continuous)} "
            "is continuous; give it a step (hp.Float(..., step=...)) in a copy of the space, "
            "or use --tuner random, bayesian or hyperband"
        )
    return name


def hyperband_trials(max_epochs: int) -> int:
    """The trials of Hyperband's one iteration at ``max_epochs``, as KerasTuner's
    ``HyperbandOracle`` schedules them: every bracket's first round of random trials and
    each later round's promoted ones (fewer where the space runs out of untried values)."""
    brackets = _hyperband_brackets(max_epochs)
    last_of_first = math.ceil(1 + math.log(max_epochs, HYPERBAND_FACTOR))
    return sum(math.ceil(last_of_first / (bracket + 1) * HYPERBAND_FACTOR ** (bracket - round_))
               for bracket in range(brackets) for round_ in range(bracket + 1))


def planned_trials(name: str, hp, *, max_trials: int | None,
                   max_epochs: int | None = None) -> int | None:
    """How many trials the search will run at most (for Hyperband, as its brackets at
    ``max_epochs`` schedule them; None without it)."""
    if name == "hyperband":
        return hyperband_trials(max_epochs) if max_epochs else None
    if name == "grid":
        size = grid_size(hp)
        return min(size, max_trials) if max_trials else size
    return max_trials or DEFAULT_MAX_TRIALS


def tuner_notes(name: str, hp, *, max_trials: int | None, initial_points: int | None,
                given: bool = True) -> list[str]:
    """What the user should know before the search about what the tuner will do.
    ``given``: whether ``max_trials`` came from ``--max-trials`` (else the space's
    settings), for the note to name where it came from."""
    size = grid_size(hp)
    if name == "grid" and max_trials is not None and size is not None and max_trials < size:
        left = size - max_trials
        where = (f"--max-trials {max_trials}" if given else
                 f"max_trials {max_trials} (the space's setting)")
        return [f"grid: {where} runs {max_trials} of the grid's {size} "
                f"combinations, in KerasTuner's order; the other {left} do not run, so some "
                "values may never be tried (give a --max-trials of at least "
                f"{size} to run them all)"]
    if name != "bayesian":
        return []
    points = initial_points or default_initial_points(hp)
    trials = max_trials or DEFAULT_MAX_TRIALS
    # Found by a new user: "With --max-trials 8" where the space's settings set it.
    where = (f"--max-trials {trials}" if given and max_trials else
             f"max_trials {trials} (the space's setting)" if max_trials else
             f"the default of {trials} trials")
    note = (f"bayesian: the first {points} completed trials are random initial points "
            f"(KerasTuner's default is 3 per hyperparameter, at least 3; --initial-points "
            f"sets it); the Gaussian process proposes the rest")
    if trials <= points:
        note += (f". With {where} this search is random search: raise "
                 f"--max-trials above {points} or lower --initial-points")
    return [note]


def nothing_left_to_run(name: str, hp, trials, *, planned: int | None) -> bool:
    """Whether a search that has created ``trials`` (KerasTuner's, any status) would start
    no other: each planned trial has one, or a random search has tried every combination
    of a finite space (its oracle draws only untried ones).

    At KerasTuner's limit on trials failing in a row such a search has nothing left to
    stop, so it ends as it would have (the limit protects the trials that remain)."""
    count = len(trials)
    size = grid_size(hp)
    return bool(planned and count >= planned) or (
        name == "random" and size is not None and count >= size)


def stop_reason(name: str, hp, *, trials_run: int, max_trials: int | None,
                max_epochs: int | None = None, failed: int = 0,
                failure_limit: bool = False) -> str | None:
    """Why a search ran fewer trials than it planned, or None when it ran them all
    (``failure_limit``: KerasTuner's limit on failures in a row stopped it)."""
    planned = planned_trials(name, hp, max_trials=max_trials, max_epochs=max_epochs)
    if planned is None or trials_run >= planned:
        return None
    stopped = f"the search stopped after {trials_run} of {planned} trials"
    size = grid_size(hp)
    if failure_limit:
        # A grid runs each combination once; random search stops sooner when it finds no
        # untried combination; Bayesian search's proposals may repeat one, and
        # Hyperband's count is its brackets' most.
        left = planned - trials_run
        if name == "random" and size is not None:
            left = min(left, size - trials_run)
        if left > 0:
            return (f"{stopped}: KerasTuner's limit on trials failing in a row ended it, "
                    "so " + ("" if name == "grid" else "up to ")
                    + f"{counted(left, 'planned trial')} never ran")
    if name == "hyperband":
        if failed:
            return (f"{stopped}: {failed} of them failed, and Hyperband promotes only "
                    "completed trials to its longer rounds")
        return (f"{stopped}: KerasTuner's Hyperband ends the search when a bracket's first "
                "round finds no untried combination"
                + (f" (the space has {size})" if size is not None else ""))
    if size is not None and trials_run >= size:
        return f"{stopped}: the space has only {size} combinations and all have run"
    if name == "grid":
        return f"{stopped}: KerasTuner's grid oracle found no combination left to run"
    gave_up = "KerasTuner's oracle found no untried combination (it gives up after 20 " \
              "repeated samples)"
    if size is None:
        return f"{stopped}: {gave_up}"
    return (f"{stopped}: {gave_up}; the space may be nearly exhausted, so a grid (--tuner "
            "grid) would cover it exactly")


def ints_as_int(hp, values: dict) -> dict:
    """``values`` with an Int hyperparameter's float values (16.0) as ints.

    KerasTuner's grid lists an ``Int`` with ``sampling="log"`` and a ``step`` as floats
    (``Int("units", 8, 64, sampling="log", step=2)`` gives 8.0, 16.0, 32.0, 64.0), which a
    layer refuses as a unit count (found by a new user: every grid trial after the first
    failed); its other tuners give ints.
    """
    import keras_tuner

    ints = {p.name for p in hp.space if isinstance(p, keras_tuner.engine.hyperparameters.Int)}
    return {name: int(value) if name in ints and isinstance(value, float)
            and value.is_integer() else value for name, value in values.items()}


@functools.cache
def resumable_grid_oracle():
    """KerasTuner's GridSearchOracle, with the order of the grid kept in ``oracle.json``,
    and the grid handed out without waiting for trials to end.

    KerasTuner keeps the grid's walk (which trial's next combination is due, and the
    trials in grid order) only in memory, so a reloaded grid raises KeyError or stops
    early. This subclass saves and restores both. KerasTuner also walks on from a trial
    only when it ends, so with several workers all but one waited (found by a new user:
    with ``--workers 2`` one worker ran 11 of 12 trials); here it walks on from a trial
    as soon as it is handed out, which gives the same combinations in the same order.
    """
    import keras_tuner
    from keras_tuner.src.tuners.gridsearch import LinkedList

    class ResumableGridSearchOracle(keras_tuner.oracles.GridSearchOracle):
        def populate_space(self, trial_id):
            proposal = super().populate_space(trial_id)
            if proposal.get("values"):
                proposal["values"] = ints_as_int(self.hyperparameters, proposal["values"])
            if (proposal["status"] == keras_tuner.engine.trial.TrialStatus.RUNNING
                    and trial_id not in self._populate_next):
                # KerasTuner appends it again when it ends: that walk finds its next
                # combination already handed out and moves on.
                self._populate_next.append(trial_id)
            return proposal

        def get_state(self):
            order, index = [], self._ordered_ids._next_index[None]
            while index is not None:
                order.append(self._ordered_ids._memory[index])
                index = self._ordered_ids._next_index[index]
            return {**super().get_state(), "grid_order": order,
                    "grid_populate_next": list(self._populate_next)}

        def set_state(self, state):
            super().set_state(state)
            self._ordered_ids = LinkedList()
            for trial_id in state.get("grid_order", []):
                self._ordered_ids.insert(trial_id)
            self._populate_next = list(state.get("grid_populate_next", []))

    return ResumableGridSearchOracle


@functools.cache
def resumable_bayesian_oracle():
    """KerasTuner's BayesianOptimizationOracle, with its random generator kept in
    ``oracle.json``.

    The oracle draws the starting points of each proposal's optimisation from a NumPy
    generator seeded once, and does not save it: a resumed run started it from the seed
    again and proposed other trials than the uninterrupted run (found by a new user).
    """
    import keras_tuner
    import numpy as np

    class ResumableBayesianOptimizationOracle(keras_tuner.oracles.BayesianOptimizationOracle):
        def get_state(self):
            kind, keys, position, has_gauss, cached = self._random_state.get_state()
            return {**super().get_state(),
                    "proposal_random_state": [kind, keys.tolist(), int(position),
                                              int(has_gauss), float(cached)]}

        def set_state(self, state):
            super().set_state(state)
            saved = state.get("proposal_random_state")
            if saved is not None:
                kind, keys, position, has_gauss, cached = saved
                self._random_state.set_state(
                    (kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))

    return ResumableBayesianOptimizationOracle


@functools.cache
def in_trial_order(oracle_class):
    """``oracle_class`` whose ``reload`` keeps the trials in the order they were created.

    KerasTuner reloads a run's trials in the order the file system lists their folders,
    and its oracles read them in that order: the Bayesian oracle fitted its Gaussian
    process to them so, and a resumed run proposed other values than the uninterrupted
    one (found by a new user); the best trials' ties were taken in folder order.
    """

    class InTrialOrder(oracle_class):
        def reload(self):
            super().reload()
            # Trial ids count up with a fixed width per oracle; the length keeps a
            # wider id (a Hyperband run past its width) after the narrower ones.
            self.trials = dict(sorted(self.trials.items(),
                                      key=lambda item: (len(item[0]), item[0])))

    InTrialOrder.__name__ = InTrialOrder.__qualname__ = oracle_class.__name__
    return InTrialOrder


@functools.cache
def declared_only(oracle_class):
    """``oracle_class`` whose refusal of a hyperparameter that ``declare`` did not declare
    (one a hook declared, in a trial the pre-flight check's build did not reach) is a
    ``BenchError`` that says what to do, not KerasTuner's RuntimeError and traceback."""

    class DeclaredOnly(oracle_class):
        def update_space(self, hyperparameters):
            from bench.space import declared_in_a_hook, undeclared

            new = undeclared(self.hyperparameters, hyperparameters)
            if new:
                raise declared_in_a_hook(new[0], declared=self.hyperparameters,
                                         who="a hook of the search space", when="in a trial",
                                         then=", then start a new run")
            super().update_space(hyperparameters)

    DeclaredOnly.__name__ = DeclaredOnly.__qualname__ = oracle_class.__name__
    return DeclaredOnly


def _suite_oracle(oracle_class):
    return in_trial_order(declared_only(oracle_class))


def make_oracle(name: str, *, hyperparameters, max_trials: int | None, seed: int,
                max_epochs: int, initial_points: int | None = None):
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
        return _suite_oracle(resumable_grid_oracle())(max_trials=max_trials, **common)
    if name == "random":
        return _suite_oracle(keras_tuner.oracles.RandomSearchOracle)(
            max_trials=max_trials or DEFAULT_MAX_TRIALS, **common)
    if name == "bayesian":
        return _suite_oracle(resumable_bayesian_oracle())(
            max_trials=max_trials or DEFAULT_MAX_TRIALS, num_initial_points=initial_points,
            **common)
    if name == "hyperband":
        return _suite_oracle(keras_tuner.oracles.HyperbandOracle)(
            max_epochs=max_epochs, factor=HYPERBAND_FACTOR, **common)
    raise unknown_name("tuner", name, list(TUNERS))
