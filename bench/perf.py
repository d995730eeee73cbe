"""``run_bench.py perf``: one study run two ways in one process, and how far apart they are.

(a) is plain KerasTuner as its documentation teaches: ``build(hp)`` builds and compiles a
new model, ``tuner.search(x, y, validation_data=...)`` trains it, and every configuration
runs ``executions_per_trial`` = repeats times. (b) is the suite on the same data,
backbone, source weights, tuner, grid, epochs and batch size. (b) runs first, so any
warm-up of the process (imports, kernels) favours the baseline, not the suite.

``perf.json`` holds ``speedup`` = (a)'s search seconds / (b)'s, both sides' throughput
and best validation accuracy, and (b)'s time over an arithmetic floor: the multiply-adds
the study requires (``bench.floor``), over this device's measured matrix-multiply rate.
The floor is a lower bound no implementation can beat, not a target.

Where (a) would take too long (a ResNet50V2 study on a GPU lent for minutes), it can run
fewer executions per configuration (``baseline_repeats``, at least 2) and its time for
all of them is estimated: per configuration, the seconds of the executions it ran plus
the second's for each one not run. Plain KerasTuner builds and compiles a new model for every
execution, so executions after the first of a configuration cost alike; the first can
cost more (compilation caches warm on it), which is why the rest are priced at the second
execution's cost, not the first's. ``speedup`` then uses the estimate and ``perf.json``
says so (``speedup_basis``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import BenchError
from bench.plan import RunSpec, StudyPlan, plan_study
from bench.results import RunDir, check_new_run_dir, run_name
from bench.runner import prepare_inputs, run_study, study_oracle
from bench.space import SearchSpace


@dataclass(frozen=True)
class Side:
    """One way of running the study, measured."""

    name: str
    search_seconds: float
    executions: int
    train_images_seen: int
    best_val_accuracy: float
    #: The best configuration's executions, each one's best-epoch validation accuracy (of
    #: which ``best_val_accuracy`` is the mean): the spread to judge the two sides by.
    best_executions: tuple[float, ...] = ()
    #: Other trials tied with the best at its score (the first in trial order is
    #: ``best_executions``'s).
    tied_with: tuple[str, ...] = ()
    #: The best trial and its hyperparameters as KerasTuner saved them, so the two sides'
    #: choices can be compared.
    best_trial: str = ""
    best_hyperparameters: dict = field(default_factory=dict)

    @property
    def executions_per_minute(self) -> float:
        return 60.0 * self.executions / self.search_seconds

    @property
    def images_per_second(self) -> float:
        return self.train_images_seen / self.search_seconds

    @property
    def best_sd(self) -> float:
        """The standard deviation of ``best_executions`` (n - 1), NaN below two."""
        import statistics

        values = self.best_executions
        return statistics.stdev(values) if len(values) > 1 else float("nan")

    def as_dict(self) -> dict:
        return asdict(self) | {"executions_per_minute": round(self.executions_per_minute, 2),
                               "images_per_second": round(self.images_per_second, 1),
                               "best_executions": list(self.best_executions),
                               "tied_with": list(self.tied_with),
                               "best_sd": None if math.isnan(self.best_sd)
                               else round(self.best_sd, 4)}


@dataclass(frozen=True)
class Extrapolation:
    """Plain KerasTuner's search time for all ``repeats`` executions per configuration,
    estimated from a run of ``measured_repeats`` (see the module's docstring)."""

    measured_repeats: int
    repeats: int
    execution_seconds: tuple[tuple[float, ...], ...]  # per configuration, per execution

    @property
    def estimated_search_seconds(self) -> float:
        extra = self.repeats - self.measured_repeats
        return sum(sum(seconds) + extra * seconds[1] for seconds in self.execution_seconds)

    def as_dict(self) -> dict:
        # perf.json keeps execution_seconds beside it, in plain_kerastuner.
        return {"measured_repeats": self.measured_repeats, "repeats": self.repeats,
                "estimated_search_seconds": round(self.estimated_search_seconds, 2)}


def execution_clock(ends: list[float], bests: list[float] | None = None):
    """A Keras callback that appends the time at which each execution's ``fit`` ends to
    ``ends``, and its best epoch's validation accuracy to ``bests``. KerasTuner deep-copies
    callbacks for every execution; this one stays itself, so every execution appends to
    the same lists."""
    import keras

    from bench.tuning.algorithms import OBJECTIVE

    class ExecutionClock(keras.callbacks.Callback):
        def __deepcopy__(self, memo):
            return self

        def on_train_begin(self, logs=None):
            self.curve = []

        def on_epoch_end(self, epoch, logs=None):
            self.curve.append((logs or {}).get(OBJECTIVE, float("nan")))

        def on_train_end(self, logs=None):
            ends.append(time.perf_counter())
            if bests is not None:
                bests.append(max(self.curve, default=float("nan")))

    return ExecutionClock()


def extrapolate(started: float, ends: list[float], *, measured_repeats: int,
                repeats: int) -> Extrapolation | None:
    """Groups the executions' end times into configurations (KerasTuner runs a trial's
    executions one after the other) and returns the estimate, or None where the count
    does not divide (a trial failed part-way)."""
    if measured_repeats < 2 or not ends or len(ends) % measured_repeats:
        return None
    intervals = [b - a for a, b in zip([started, *ends], ends)]
    groups = [tuple(round(x, 3) for x in intervals[i:i + measured_repeats])
              for i in range(0, len(intervals), measured_repeats)]
    return Extrapolation(measured_repeats=measured_repeats, repeats=repeats,
                         execution_seconds=tuple(groups))


def seed_plain_kerastuner(seed: int) -> None:
    """Seeds plain KerasTuner's side as a user would (``keras.utils.set_random_seed``),
    then unsets TensorFlow's global seed again.

    With it set, Keras's ``fit`` on arrays (TensorFlow backend) trains on one batch order
    in every epoch: tf.data recreates the seeded shuffle each time it iterates
    (tensorflow/tensorflow#26179). Unseeded Keras, Keras on JAX and the suite draw a new
    order every epoch. On one configuration of the default study, over 30 seeds paired
    by initial weights (2026-12-05, TensorFlow 2.21), Keras seeded so gave a best
    validation accuracy 0.011 higher than a new order each epoch (paired t-test p = 0.01;
    docs/batch-order/): the two sides' accuracies differed by the procedure, not the
    suite."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.random.set_seed(None)


def plain_kerastuner(plan: StudyPlan, *, data, weights, directory: Path,
                     executions_per_trial: int | None = None) -> tuple[Side, list[float], float]:
    """Runs the study as plain KerasTuner does it: a new model built and compiled for
    every execution, KerasTuner's own fit, checkpoints and bookkeeping. With
    ``executions_per_trial`` below the study's repeats, each configuration runs that many
    times. Returns the side, when each execution's fit ended and when the search began."""
    import keras_tuner

    from bench.tuning.algorithms import OBJECTIVE
    from bench.tuning.hypermodel import FineTuneHyperModel

    hypermodel = FineTuneHyperModel(plan.space, plan.model_inputs(data, weights))

    def build(hp):
        return hypermodel.build_parts(hp).model

    settings = plan.settings
    repeats = executions_per_trial or settings.repeats
    oracle = study_oracle(plan)
    tuner = keras_tuner.Tuner(oracle=oracle, hypermodel=build,
                              executions_per_trial=repeats, directory=str(directory),
                              project_name="plain-kerastuner", overwrite=True)
    seed_plain_kerastuner(plan.spec.seed)
    ends: list[float] = []
    bests: list[float] = []
    started = time.perf_counter()
    tuner.search(data.train.images, data.train.labels,
                 validation_data=(data.validation.images, data.validation.labels),
                 epochs=settings.epochs, batch_size=settings.batch_size, verbose=0,
                 callbacks=[execution_clock(ends, bests)])
    seconds = time.perf_counter() - started
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    best = tuner.oracle.get_best_trials(1)
    tied = _tied(best[0], trials) if best else ()
    executions = len(trials) * repeats
    best_executions = ()
    ran = sorted(tuner.oracle.trials)  # KerasTuner runs a trial's executions in a row
    if best and len(bests) == len(ran) * repeats and len(trials) == len(ran):
        first = ran.index(best[0].trial_id) * repeats
        best_executions = tuple(round(v, 6) for v in bests[first:first + repeats])
    side = Side(name=f"plain KerasTuner (mean over executions of each one's best-epoch "
                     f"{OBJECTIVE}: KerasTuner's trial score)",
                search_seconds=round(seconds, 2), executions=executions,
                train_images_seen=executions * settings.epochs * len(data.train),
                best_val_accuracy=float(best[0].score) if best else float("nan"),
                best_executions=best_executions, tied_with=tied,
                best_trial=best[0].trial_id if best else "",
                best_hyperparameters=dict(best[0].hyperparameters.values) if best else {})
    return side, ends, started


def _tied(best, trials) -> tuple[str, ...]:
    """The completed trials other than ``best`` scoring as it does (``numbers.TIE_RTOL``:
    accuracies are counts, summed in other orders), in trial order."""
    from bench.analysis.numbers import TIE_RTOL

    return tuple(sorted(t.trial_id for t in trials if t.trial_id != best.trial_id
                        and math.isclose(t.score, best.score, rel_tol=TIE_RTOL)))


def suite_side(run_dir: Path, *, train_images: int) -> Side:
    import pandas as pd

    record = json.loads((run_dir / "run.json").read_text())
    from bench.analysis.numbers import best_trials

    epochs = pd.read_csv(run_dir / "epochs.csv", dtype={"trial_id": str})
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    executions = len(epochs.groupby(["trial_id", "repeat"]))
    # The pre-flight check traces the model the first trial then reuses: its time is the
    # search's, or moving that trace out of the search would flatter the suite.
    seconds = float(record["search_seconds"]) + float(record["preflight_seconds"])
    tied = best_trials(trials)
    best = tied.iloc[0]
    mine = epochs[epochs["trial_id"] == best["trial_id"]]
    saved = trial_hyperparameters(RunDir(run_dir)).get(best["trial_id"])
    return Side(name="the suite (mean over repeats of each repeat's best epoch)",
                search_seconds=round(seconds, 2), executions=executions,
                train_images_seen=len(epochs) * train_images,
                best_val_accuracy=float(best["best_val_accuracy"]),
                best_executions=tuple(round(float(v), 6) for v in
                                      mine.groupby("repeat")["val_accuracy"].max()),
                tied_with=tuple(tied["trial_id"].iloc[1:]), best_trial=best["trial_id"],
                best_hyperparameters=dict(saved.values) if saved is not None else {})


def floor_seconds(plan: StudyPlan, *, data, weights, suite_dir: Path, rate: float) -> float:
    """The least time the suite's executions (from its ``epochs.csv``) require at ``rate``
    (``bench.floor``): the frozen prefixes' features once per weights and split, the rest
    of the model trained and evaluated per execution."""
    import pandas as pd

    from bench.floor import Execution, forward_macs, prefix_macs, required_macs
    from bench.tuning.hypermodel import FineTuneHyperModel

    hypermodel = FineTuneHyperModel(plan.space, plan.model_inputs(data, weights))
    parts = hypermodel.build_parts(plan.hp.copy(), compile=False)
    rows = pd.read_csv(suite_dir / "epochs.csv", dtype={"trial_id": str},
                       keep_default_na=False)
    trial_hps = trial_hyperparameters(RunDir(suite_dir))

    def execution(trial_id: str, group: pd.DataFrame) -> Execution:
        # What the builder used: the trial's values through the space's value(), which
        # gives an inactive conditional hyperparameter (an empty cell) the space's
        # setting, or whatever a space that overrides value() derives for it.
        hp = trial_hps[trial_id]
        return Execution(init=str(plan.space.value(hp, "init")),
                         seed=int(group["seed"].iloc[0]),
                         frozen_blocks=int(plan.space.value(hp, "frozen_blocks")),
                         epochs=len(group))

    executions = [execution(trial_id, group)
                  for (trial_id, _), group in rows.groupby(["trial_id", "repeat"])]
    macs = required_macs(executions, model_macs=forward_macs(parts.model),
                         prefix=prefix_macs(parts), train=len(data.train),
                         validation=len(data.validation), test=len(data.test))
    return macs / rate


def trial_hyperparameters(run: RunDir) -> dict:
    """Trial id -> the ``keras_tuner.HyperParameters`` that trial ran with, as KerasTuner
    saved them (active values only)."""
    import keras_tuner

    found = {}
    for path in sorted(run.tuner.glob("trial_*/trial.json")):
        state = json.loads(path.read_text())
        found[state["trial_id"]] = keras_tuner.HyperParameters.from_config(
            state["hyperparameters"])
    return found


def run_perf(spec: RunSpec, *, baseline_repeats: int | None = None, log=print) -> Path:
    """Runs the study of ``spec`` both ways and writes ``perf.json``; returns its path.
    With ``baseline_repeats``, plain KerasTuner runs that many executions per
    configuration and its time for all of them is estimated (see the module docstring)."""

    name = run_name(spec.name, prefix="perf")
    out = Path(spec.results_dir) / name
    check_new_run_dir(Path(spec.results_dir), name)
    plan = plan_study(spec)
    if type(plan.space).fit is not SearchSpace.fit:
        raise BenchError(f"perf compares spaces trained by one plain fit; {plan.space.name} "
                         "overrides fit(), which plain KerasTuner cannot run the same way")
    if plan.tuner_name == "hyperband":
        raise BenchError("perf times both sides on the same trials and epochs; Hyperband "
                         "gives each trial its own number of epochs, which plain "
                         "KerasTuner's Tuner does not follow: use --tuner grid or random")
    if plan.tuner_name == "bayesian":
        # Found by an audit: the sides' results differ (other batch orders), so Bayesian
        # optimisation proposed other trials on each, and the suite skips a proposal it
        # has run (4 trials against 6): the times would not be of one study.
        raise BenchError("perf times both sides on the same trials; Bayesian optimisation "
                         "proposes from each side's own results, so the two would run other "
                         "trials: use --tuner grid or random")
    repeats = plan.settings.repeats
    if baseline_repeats is not None and not 2 <= baseline_repeats <= repeats:
        raise BenchError(f"--baseline-repeats must be between 2 and the study's repeats "
                         f"({repeats}); got {baseline_repeats}. Two are the fewest that "
                         "price a configuration's later executions")
    measured_repeats = baseline_repeats or repeats
    out.mkdir(parents=True)
    try:
        return _measure(spec, plan, out=out, baseline_repeats=baseline_repeats,
                        measured_repeats=measured_repeats, log=log)
    except (BenchError, KeyboardInterrupt) as error:
        # A mistake found before anything ran (the data, the cache folder) leaves no empty
        # folder to refuse the corrected command's --name.
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        error.perf_dir = out if out.is_dir() else None
        raise


def _counted_floor(plan: StudyPlan, *, data, weights, suite_dir: Path, log) -> tuple:
    """``(floor seconds, matmul rate, error)``: the suite's arithmetic floor at this
    device's measured rate, or why it could not be counted (both sides' minutes of
    measurement are kept either way)."""
    from bench.floor import matmul_rate
    from bench.models.precision import compute_dtype

    floor = rate = floor_error = None
    try:
        rate = matmul_rate(dtype=compute_dtype(plan.spec.precision))  # the layers' arithmetic
        floor = floor_seconds(plan, data=data, weights=weights, suite_dir=suite_dir,
                              rate=rate)
    except Exception as error:  # noqa: BLE001 (both sides' minutes of measurement stay)
        floor_error = f"{type(error).__name__}: {error}"
        log(f"perf: the arithmetic floor could not be counted ({floor_error}); perf.json "
            "has both sides without it")
    return floor, rate, floor_error


def _measure(spec: RunSpec, plan: StudyPlan, *, out: Path, baseline_repeats: int | None,
             measured_repeats: int, log) -> Path:
    from bench.device import describe_device, library_versions

    repeats = plan.settings.repeats
    log(f"perf: {plan.space.name} on {plan.settings.dataset}, {plan.backbone.name} at "
        f"{plan.image_size}px, precision {plan.spec.precision}; (b) the suite first, then "
        "(a) plain KerasTuner")
    started = time.perf_counter()
    suite_dir = run_study(replace(spec, results_dir=out, name="suite"), log=log)
    suite_wall = time.perf_counter() - started
    data, weights, _ = prepare_inputs(plan.spec, settings=plan.settings,
                                      backbone=plan.backbone, hp=plan.hp,
                                      image_size=plan.image_size, log=log)
    suite = suite_side(suite_dir, train_images=len(data.train))
    fewer = measured_repeats < repeats
    log("perf: now plain KerasTuner on the same study" + (
        f", {measured_repeats} of {repeats} executions per configuration (the rest "
        "estimated)" if fewer else ""))
    plain, ends, started = plain_kerastuner(plan, data=data, weights=weights, directory=out,
                                            executions_per_trial=measured_repeats)
    # Each execution's seconds, by configuration: the basis of an estimate, and with all
    # repeats run, the data to check how well one from fewer would have done.
    clocked = extrapolate(started, ends, measured_repeats=measured_repeats, repeats=repeats)
    plain_seconds, basis, extrapolation = plain.search_seconds, "measured", None
    if fewer:
        extrapolation = clocked
        if extrapolation is None:
            raise BenchError(f"plain KerasTuner's executions ({len(ends)}) do not group into "
                             f"configurations of {measured_repeats}; run perf without "
                             "--baseline-repeats")
        plain_seconds = extrapolation.estimated_search_seconds
        basis = (f"estimated: plain KerasTuner ran {measured_repeats} of {repeats} "
                 "executions per configuration")
    floor, rate, floor_error = _counted_floor(plan, data=data, weights=weights,
                                              suite_dir=suite_dir, log=log)
    device = describe_device()
    result = {
        # Unrounded: the table rounds it once, to two decimals.
        "speedup": plain_seconds / suite.search_seconds,
        "speedup_basis": basis,
        "plain_kerastuner": plain.as_dict() | (
            {"execution_seconds": [list(s) for s in clocked.execution_seconds]} if clocked
            else {}
        ) | ({"extrapolation": extrapolation.as_dict()} if extrapolation else {}),
        "suite": suite.as_dict(),
        "suite_run": str(suite_dir),
        # Every option (b) ran with (its run.json's), fast paths and --tensorboard among
        # them; (a) is KerasTuner as its documentation teaches, with none of them.
        "suite_arguments": json.loads((Path(suite_dir) / "run.json").read_text())
        .get("arguments", {}),
        # The suite's study end to end in this process (data, pretraining unless cached,
        # checks, search, tables and figures), imports excepted.
        "suite_wall_seconds": round(suite_wall, 2),
        "floor_seconds": None if floor is None else round(floor, 3),
        "suite_over_floor": None if floor is None else round(suite.search_seconds / floor, 1),
        "matmul_macs_per_second": None if rate is None else round(rate),
        **({"floor_error": floor_error} if floor_error else {}),
        "study": {"space": plan.space.name, "dataset": plan.settings.dataset,
                  "backbone": plan.backbone.name, "image_size": plan.image_size,
                  "tuner": plan.tuner_name, "epochs": plan.settings.epochs,
                  "repeats": plan.settings.repeats, "batch_size": plan.settings.batch_size,
                  "train_images": len(data.train), "validation_images": len(data.validation),
                  "precision": plan.spec.precision},
        "backend": device["backend"], "device": device["device"],
        "cpu_features": device["cpu_features"],
        "versions": library_versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = out / "perf.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    log(perf_table(result))
    log(f"perf: {path}")
    return path


def perf_table(result: dict) -> str:
    """The comparison as a small text table."""
    rows = [("", "search s", "executions/min", "train images/s",
             "best val acc (sd over its executions)")]
    for key, label in (("plain_kerastuner", "(a) plain KerasTuner"), ("suite", "(b) suite")):
        side = result[key]
        sd = side.get("best_sd")
        tied = side.get("tied_with") or []
        rows.append((label, f"{side['search_seconds']:.1f}",
                     f"{side['executions_per_minute']:.1f}", f"{side['images_per_second']:.0f}",
                     f"{side['best_val_accuracy']:.3f}"
                     + (f" ({sd:.3f})" if sd is not None else "")
                     + (f", tied with trial {', '.join(tied)}" if tied else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    extrapolation = result["plain_kerastuner"].get("extrapolation")
    if extrapolation:
        lines.append(f"(a) ran {extrapolation['measured_repeats']} of "
                     f"{extrapolation['repeats']} executions per configuration; all of them "
                     f"estimated at {extrapolation['estimated_search_seconds']:.1f} s; its "
                     "best val acc is a mean over the executions it ran, (b)'s over all")
    chose = []
    for key, label in (("plain_kerastuner", "(a)"), ("suite", "(b)")):
        side = result[key]
        if side.get("best_trial"):
            values = ", ".join(f"{name}={value}" for name, value
                               in side.get("best_hyperparameters", {}).items()
                               if not name.startswith("tuner/"))
            chose.append(f"{label} trial {side['best_trial']}" + (f" ({values})" if values
                                                                  else ""))
    if chose:
        lines.append(f"best: {'; '.join(chose)}")
    floor = ("its arithmetic floor not counted" if result["floor_seconds"] is None else
             f"(b) is {result['suite_over_floor']:.1f}x its arithmetic floor of "
             f"{result['floor_seconds']:.2f} s")
    lines.append(f"speedup (a)/(b): {result['speedup']:.2f}x; {floor} on {result['device']}")
    return "\n".join(lines)
