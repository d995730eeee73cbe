"""The worker loop: one KerasTuner Tuner that runs every trial as repeats with fixed seeds.

KerasTuner's own loop builds, fits and keeps the best epoch. This Tuner keeps its
oracle, project directory and trial bookkeeping, and replaces the execution: each repeat
sets the global seed itself (the oracle's seed only drives sampling), builds the model,
lets the search space fit it with a recorder that writes every epoch, and evaluates the
held-out test split, which the tuner never sees.
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass, field
from typing import NamedTuple

import keras
import keras_tuner
import numpy as np

from bench.data.datasets import Split, TransferData
from bench.errors import BenchError, DiskFull, FailureLimit
from bench.results import RunDir, read_epochs, summarise_trials, write_csv, write_json
from bench.stopping import raise_if_stopped
from bench.tuning.algorithms import OBJECTIVE, ints_as_int
from bench.tuning.batches import (
    resident_fit_arguments,
    seeded_fit_arguments,
    short_epochs_fit_arguments,
)
from bench.tuning.evaluation import OneBatch, OneBatchValidation, evaluate_split
from bench.tuning.memory import device_mib, resident_mib
from bench.tuning.prefix import PrefixCache
from bench.tuning.preflight import ProbabilityCheck
from bench.tuning.probe import changes_at_inference, changing_layer, probe_batch
from bench.tuning.progress import Progress
from bench.tuning.recording import CsvAppender, EpochRecorder
from bench.tuning.resident import OnDevice
from bench.tuning.resume import extras_path
from bench.tuning.reuse import CompiledModels, only_suite_layers
from bench.tuning.together import TrainTogether

#: A fit hook that trained without ``run.fit`` (which records the epochs and sets the order).
NO_EPOCH = ("its fit() ran no epoch through run.fit: train with run.fit(parts.model, "
            "epochs=...) (a model.fit of its own is not recorded)")
CONSECUTIVE_FAILURES = "consecutive failures exceeded the limit"


@dataclass
class FitRun:
    """What a search space's ``fit`` works with for one execution."""

    train: Split
    validation: Split
    epochs: int
    batch_size: int
    recorder: EpochRecorder
    callbacks: list = field(default_factory=list)
    #: Validation runs in batches of this size: an epoch of a small study is mostly
    #: validation, and evaluation needs no batch the size of training's.
    evaluation_batch_size: int = 512
    seed: int | None = None  # the execution's seed: each epoch's batch order from it
    #: ``train`` on the device (JAX), batched there; only while ``train`` is its split.
    on_device: OnDevice | None = None
    #: ``validation`` as one batch, converted once; only while it is that split.
    one_validation: OneBatch | None = None
    #: The study's ``--batch-size``, which the tables record (``batch_size`` by default;
    #: the pre-flight check trains one smaller batch).
    study_batch_size: int | None = None
    #: The epochs ``fit`` recorded: a space's own ``fit`` may validate without it (its
    #: own ``model.fit`` recording through ``recorder``), at a batch size of its own.
    fitted_epochs: int = field(default=0, init=False)

    def __post_init__(self):
        if self.study_batch_size is None:
            self.study_batch_size = self.batch_size
        self.__dict__["_given_batch_size"] = self.batch_size

    def __setattr__(self, name, value):
        # Found by a new user: a fit hook set run.batch_size per trial; it trained so, and
        # run.json, the report and perf said the study's batch size.
        if name == "batch_size" and "_given_batch_size" in self.__dict__ and value not in (
                self.__dict__["_given_batch_size"], self.study_batch_size):
            raise BenchError(
                f"a fit hook set run.batch_size to {value}; the study's batch size "
                "(--batch-size) is what run.json and the report record, so a hook cannot "
                "change it: to compare batch sizes, run the study once per --batch-size and "
                "join the runs with 'analyze RUN RUN ...'")
        super().__setattr__(name, value)

    def fit(self, model, *, epochs: int, initial_epoch: int = 0,
            steps_per_epoch: int | None = None):
        """``model.fit`` on the training split, validated every epoch, every epoch recorded.

        Epochs count on across calls: a second phase passes ``initial_epoch``.
        ``steps_per_epoch`` shortens an epoch to that many batches (None: all of them).
        After a loss became NaN or infinite nothing more is trained (returns None).
        """
        if self.recorder.failure is not None:
            return None
        _check_restores_no_weights(self.callbacks)
        callbacks = [self.recorder, *self.callbacks]
        if steps_per_epoch is not None:
            training = short_epochs_fit_arguments(
                self.train, seed=self.seed, batch_size=self.batch_size,
                steps_per_epoch=steps_per_epoch, epochs=epochs, initial_epoch=initial_epoch)
        elif self.seed is not None and self.on_device is not None \
                and self.on_device.holds(self.train):
            training = resident_fit_arguments(
                self.on_device, seed=self.seed, batch_size=self.batch_size, epochs=epochs,
                initial_epoch=initial_epoch)
        elif self.seed is not None:
            training, seeding = seeded_fit_arguments(
                self.train, seed=self.seed, batch_size=self.batch_size, epochs=epochs,
                initial_epoch=initial_epoch)
            callbacks[1:1] = seeding
        else:
            training = {"x": self.train.images, "y": self.train.labels,
                        "batch_size": self.batch_size}
        validation = {}
        if len(self.validation) <= self.evaluation_batch_size:
            one = self.one_validation
            if one is None or not one.holds(self.validation):
                one = OneBatch.of(self.validation)
            callbacks.insert(0, OneBatchValidation(one))
        else:
            validation = {"validation_data": (self.validation.images, self.validation.labels),
                          "validation_batch_size": self.evaluation_batch_size}
        recorded = len(self.recorder.rows)
        history = model.fit(epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                            verbose=0, **training, **validation)
        self.fitted_epochs += len(self.recorder.rows) - recorded
        return history

    @property
    def validated_every_epoch(self) -> bool:
        """Whether every epoch recorded was validated by ``fit`` (none by the space's own
        ``model.fit``, at a batch size of its own)."""
        return self.fitted_epochs == len(self.recorder.rows)


def _check_restores_no_weights(callbacks) -> None:
    # Found by a new user: the test pass then scored the best epoch's weights, beside the
    # last epoch's validation numbers, under "after the last epoch".
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping) \
                and callback.restore_best_weights:
            raise BenchError(
                "a fit hook's EarlyStopping(restore_best_weights=True) would make "
                "test_accuracy score each execution's best epoch, while its final "
                "accuracies and the report are of its last epoch: use "
                "restore_best_weights=False (best_val_accuracy records the best epoch)")


class FastPathCounts(NamedTuple):
    """What ``run.json`` counts of the fast paths, at one moment of a search."""

    prefix_executions: int
    larger_evaluations: int
    larger_tests_only: int
    together_trials: int
    retried_alone: int


def repeat_seeds(seed: int, repeats: int) -> list[int]:
    """The global seed of each repeat: the same for every trial, so inits are paired."""
    return [seed + repeat for repeat in range(repeats)]


@dataclass
class Execution:
    """The fixed part of every trial in a run."""

    run_id: str
    data: TransferData
    epochs: int
    batch_size: int
    repeats: int
    seed: int
    table: CsvAppender
    columns: list[str]  # hyperparameter columns of epochs.csv
    run_dir: RunDir
    evaluation_batch_size: int = 512


class BenchTuner(keras_tuner.Tuner):
    """A Tuner whose executions are seeded repeats, recorded epoch by epoch."""

    def __init__(self, *, oracle, hypermodel, directory, project_name,
                 execution: Execution, progress: Progress, reuse_models: bool = True,
                 tensorboard_dir=None, prefix: PrefixCache | None = None,
                 together: bool = False, nothing_left_to_run=None,
                 device_data: bool = False):
        super().__init__(oracle=oracle, hypermodel=hypermodel, directory=directory,
                         project_name=project_name)
        if self._is_worker():
            from bench.tuning.worker_link import patient_client

            # KerasTuner's own client, which polls without pause while the oracle is busy,
            # turns the chief's refusal into a traceback and waits silently for a dead chief.
            self.oracle = patient_client(self.oracle, run=execution.run_dir.path,
                                         log=progress.note)
        self.execution = execution
        self.tensorboard_dir = tensorboard_dir
        self.models = CompiledModels(hypermodel, enabled=reuse_models)
        # One validation batch checks each new graph's outputs and whether a model
        # changes at inference; two of its images whether a kept model computes what a
        # new build does (four calls for every reuse of a hook's graph).
        self._validation_batch = keras.tree.map_structure(
            lambda images: images[:execution.batch_size], execution.data.validation.images)
        self.models.check_build = ProbabilityCheck(
            hypermodel.space, self._validation_batch,
            num_classes=hypermodel.inputs.num_classes)
        self.models.probe_images = probe_batch(self._validation_batch)
        # Per model: whether it changes at inference (absent: not asked yet).
        self._changes_at_inference: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.progress = progress
        #: Called with the oracle's trials: whether the search would start no other
        #: (``StudyPlan.nothing_left_to_run``; None in a worker, whose chief decides).
        self.nothing_left_to_run = nothing_left_to_run
        self.models.note = progress.note
        self.prefix = prefix
        self.together = TrainTogether(hypermodel, models=self.models, prefix=prefix,
                                      enabled=together,
                                      tensorboard=tensorboard_dir is not None)
        self.together.note = self.say
        if prefix is not None:
            prefix.note = self.say
        self.trial_extras: dict[str, dict] = {}
        #: What the run's report should say about this search (fast paths that are off).
        self.notes: list[str] = []
        #: Called when a trial's executions have ended, before the oracle is told, and
        #: again after its tables are written (a worker saves its notes and counts for the
        #: chief). Killed in between, a trial kept as ended has its executions counted;
        #: one that runs again is counted twice, as its executions did run twice.
        self.after_trial = None
        self.finished: dict[tuple, str] = {}  # configuration -> the trial that ran it
        self.results: dict[str, list[dict]] = {}  # trial -> what the oracle was given
        self._one_test_batch: OneBatch | None = None
        self._repeat: int | None = None  # the repeat training alone now, for its error
        #: Whether the training split goes to the device once (JAX; the runner decides).
        self.device_data = device_data
        #: Executions whose validation or test ran in larger batches than training's
        #: (--evaluation-batch-size), which rounds otherwise; the report names them.
        self.large_evaluations = 0
        #: Executions tested so whose validation ran in their space's own ``fit``.
        self.large_tests_only = 0
        self._held: dict | None = None

    def continue_from(self, extras: dict[str, dict]) -> None:
        """After KerasTuner reloaded a run's project: what trials.csv knew of the trials
        that ended, and which configurations have run (for duplicate proposals)."""
        self.trial_extras.update(extras)
        repeats = self.execution.repeats
        for trial_id, trial in sorted(self.oracle.trials.items()):
            duplicate = extras.get(trial_id, {}).get("duplicate_of")
            if trial.status == "COMPLETED" and trial.score is not None and not duplicate:
                self.finished[self._configuration(trial.hyperparameters)] = trial_id
                self.results[trial_id] = [{OBJECTIVE: float(trial.score)}] * repeats
                self.progress.scored(trial_id, float(trial.score))

    def search(self, *args, **kwargs):
        """KerasTuner's search, without its printed traceback for every failed trial: the
        progress line and trials.csv give the error in one line, and the whole traceback
        stays in ``tuner/trial_<id>/trial.json``."""
        from keras_tuner.src import config

        debug, config.DEBUG = config.DEBUG, False
        try:
            return super().search(*args, **kwargs)
        finally:
            config.DEBUG = debug

    def _values(self, hp) -> dict:
        return hyperparameter_values(hp, space=self.hypermodel.space,
                                     columns=self.execution.columns)

    def on_trial_begin(self, trial):
        # The grid oracle hands out ints; a trial it handed out before it did (a resumed
        # run's) may hold KerasTuner's floats.
        trial.hyperparameters.values.update(ints_as_int(trial.hyperparameters,
                                                        trial.hyperparameters.values))
        raise_if_stopped()
        super().on_trial_begin(trial)
        values = trial.hyperparameters.values
        # In the tables' order: a worker's trial comes over gRPC in another (found by a
        # new user: its progress lines listed the values backwards).
        names = [*[c for c in self.execution.columns if c in values],
                 *[k for k in values if k not in self.execution.columns]]
        self.progress.trial_begin(trial.trial_id, {k: values[k] for k in names
                                                   if not k.startswith("tuner/")})

    def _configuration(self, hp) -> tuple:
        """What makes two trials the same run: every value, Hyperband's epochs included."""
        return tuple(sorted((name, repr(value)) for name, value in hp.values.items()
                            if not name.startswith("tuner/") or name == "tuner/epochs"))

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        earlier = self.finished.get(self._configuration(hp))
        if earlier is not None:
            # The oracle (a Gaussian process, typically) proposed a configuration that has
            # run already. The same values and seeds give the same curves, so it is not
            # trained again; the oracle gets the earlier score and the tables say so.
            self.trial_extras[trial.trial_id] = {"duplicate_of": earlier, "seconds": 0.0}
            return self.results[earlier]
        started = time.perf_counter()
        counts = self._fast_path_counts()
        self._repeat = None
        failed_repeat = None
        try:
            results, tests = self._run_repeats(trial)
        except BaseException as error:
            failed_repeat = self._repeat
            # A trial that did not complete is in no number the report gives, so its
            # executions are in no fast path's count either (a resume runs it again).
            self._set_fast_path_counts(counts, rerun=isinstance(error, DiskFull)
                                       or not isinstance(error, Exception))
            if isinstance(error, DiskFull):
                # Any other error fails this trial only; a full disk stops the search.
                raise keras_tuner.errors.FatalError(str(error)) from error
            raise
        finally:
            self.trial_extras[trial.trial_id] = {
                "seconds": round(time.perf_counter() - started, 3),
                "rss_mib": resident_mib(), "device_mib": device_mib()}
            if failed_repeat is not None and self.execution.repeats > 1:
                # Which of its executions failed, for its error (trained together, none).
                self.trial_extras[trial.trial_id]["failed_repeat"] = failed_repeat
        self.trial_extras[trial.trial_id] |= {"test_accuracy": float(np.mean(tests)),
                                              "test_accuracies": [float(t) for t in tests]}
        self.finished[self._configuration(hp)] = trial.trial_id
        self.results[trial.trial_id] = results
        return results

    def _fast_path_counts(self) -> FastPathCounts:
        """The counts of executions (and trials) on each fast path so far."""
        used = self.prefix.used if self.prefix is not None else 0
        return FastPathCounts(prefix_executions=used,
                              larger_evaluations=self.large_evaluations,
                              larger_tests_only=self.large_tests_only,
                              together_trials=self.together.trials,
                              retried_alone=self.together.retried)

    def _set_fast_path_counts(self, counts: FastPathCounts, *, rerun: bool) -> None:
        """Sets the counts back to ``counts``: those of completed trials only, and where
        the trial will ``rerun`` (a stop), the trials retried alone too, which a failed
        trial keeps (its rows are what training alone wrote)."""
        if self.prefix is not None:
            self.prefix.used = counts.prefix_executions
        self.large_evaluations = counts.larger_evaluations
        self.large_tests_only = counts.larger_tests_only
        self.together.trials = counts.together_trials
        if rerun:
            self.together.retried = counts.retried_alone

    def _run_repeats(self, trial) -> tuple[list[dict], list[float]]:
        ex = self.execution
        hp = trial.hyperparameters
        # Hyperband sets each trial's epochs; it trains from scratch here (no warm start).
        epochs = int(hp.values.get("tuner/epochs", ex.epochs))
        if self.together.usable(hp, repeats=ex.repeats):
            outcome = self._run_together(trial, epochs=epochs)
            if outcome is not None:
                return outcome
        results, tests = [], []
        for repeat, seed in enumerate(repeat_seeds(ex.seed, ex.repeats), start=1):
            repeat_start = time.perf_counter()
            # A build refused (the graph's checks) is refused at every seed: no repeat.
            self._repeat = None
            parts = self.models.prepare(hp, seed=seed)
            self._repeat = repeat
            evaluation_batch_size = self._evaluation_batch_size(parts.model)
            recorder = EpochRecorder(
                ex.table,
                fixed={"run_id": ex.run_id, "trial_id": trial.trial_id, "repeat": repeat,
                       "seed": seed, **self._values(hp)},
                parts=parts, on_epoch=self.progress.epoch_end,
                settable=self.hypermodel.space.epoch_columns,
            )
            run = FitRun(train=ex.data.train, validation=ex.data.validation, epochs=epochs,
                         batch_size=ex.batch_size, recorder=recorder,
                         evaluation_batch_size=evaluation_batch_size,
                         callbacks=self._tensorboard(trial, repeat), seed=seed,
                         **self._held_data())
            depth = self.prefix.depth(parts, hp) if self.prefix is not None else 0
            weights_key = self._weights_key(hp, seed)
            if depth:
                self.prefix.fit(parts, hp=hp, run=run, k=depth, weights_key=weights_key)
            else:
                self.hypermodel.space.fit(parts, hp=hp, run=run)
            if recorder.failure is not None:
                # A NaN model still "scores" (a constant class scores the majority
                # fraction): it must fail, never be picked.
                raise keras_tuner.errors.FailedTrialError(f"{recorder.failure} of repeat "
                                                          f"{repeat}")
            curve = [row["val_accuracy"] for row in recorder.rows]
            if not curve:
                raise keras_tuner.errors.FailedTrialError(NO_EPOCH)
            # The prefix cache (off for a space with its own fit) trains through a copy
            # of run on its features, whose fit validates.
            self._count_large_evaluation(evaluation_batch_size,
                                         validated=run.validated_every_epoch or bool(depth))
            if depth:
                tested = self.prefix.test(parts, ex.data.test, weights_key=weights_key,
                                          k=depth, batch_size=evaluation_batch_size)
            else:
                tested = evaluate_split(parts.model, ex.data.test,
                                        batch_size=evaluation_batch_size,
                                        one_batch=self._test_batch())
            tests.append(float(tested["accuracy"]))
            results.append(self._repeat_result(repeat, curve, planned=epochs,
                                               seconds=time.perf_counter() - repeat_start))
        return results, tests

    def _count_large_evaluation(self, evaluation_batch_size: int, *, validated: bool) -> None:
        """Counts an execution evaluated in larger batches; one whose space validated it
        in its own ``fit`` (not ``run.fit``) only had its test pass so."""
        if not self._evaluates_larger(evaluation_batch_size):
            return
        if validated:
            self.large_evaluations += 1
        elif len(self.execution.data.test) > self.execution.batch_size:
            self.large_tests_only += 1  # a test split of one training batch is one anyway

    def _evaluates_larger(self, evaluation_batch_size: int) -> bool:
        """Whether an execution evaluating at ``evaluation_batch_size`` took other batches
        than the training batch size would (a split larger than a training batch)."""
        ex = self.execution
        return evaluation_batch_size > ex.batch_size and max(
            len(ex.data.validation), len(ex.data.test)) > ex.batch_size

    def _evaluation_batch_size(self, model) -> int:
        """The run's evaluation batch size, or the training batch size for a model that
        changes at inference (Monte-Carlo dropout, say): each evaluation batch is a
        draw, so the batch size would change its numbers."""
        ex = self.execution
        if only_suite_layers(self.hypermodel.space):
            return ex.evaluation_batch_size
        changing = self._changes_at_inference.get(model)
        if changing is None:
            changing = self._changes_at_inference[model] = changes_at_inference(
                model, self._validation_batch)
            if changing:  # at any evaluation batch size: what it scores is the matter
                self._say_changing_layer(model)
        if not changing or ex.evaluation_batch_size == ex.batch_size:
            return ex.evaluation_batch_size
        space = self.hypermodel.space.name
        line = (f"validation and test at the training batch size ({ex.batch_size}), not "
                f"--evaluation-batch-size {ex.evaluation_batch_size}, for executions of "
                f"space {space} whose model changes at inference (a call moves its random "
                "or other state, two calls on the same images differ, or an image's output "
                "depends on the others in its batch): each evaluation batch is a call, so "
                "the batch size would change their numbers")
        self.say(line)
        return ex.batch_size

    def _say_changing_layer(self, model) -> None:
        """Names the layer from which ``model`` changes at inference: what changes is
        what its validation and test scored."""
        # Found by a new user: a tf.image flip in an augment hook's Lambda flipped the
        # validation and test images too, and was said only as a batch-size matter.
        path = changing_layer(model, self._validation_batch)
        # Keras numbers the names of a layer built again ('noise_1'): one note per layer
        # of the space, whichever build, process or worker found it.
        named = (" inside ".join(f"{re.sub(r'_[0-9]+$', '', layer.name)!r} "
                                 f"({type(layer).__name__})" for layer in reversed(path))
                 if path else "unknown")
        self.say(f"space {self.hypermodel.space.name}: its model changes at inference from "
                 f"layer {named} on, so the validation and test accuracy of trials built "
                 "with it score what that layer does outside training (an augmentation "
                 "there augments the validation and test images too; Keras's random layers "
                 "act in training only)")

    def say(self, line: str) -> None:
        """Prints ``line`` and keeps it for the run's notes, once."""
        if line not in self.notes:
            self.notes.append(line)
            self.progress.note(line)

    def _repeat_result(self, repeat: int, curve: list[float], *, seconds: float,
                       planned: int | None = None) -> dict:
        """Reports a finished repeat (``planned``: the epochs it was given, where it may
        have stopped sooner); what the oracle gets for it: its best epoch."""
        self.progress.repeat_end(repeat=repeat, final=curve[-1],
                                 best_epoch=int(np.argmax(curve)) + 1, seconds=seconds,
                                 epochs=len(curve), planned=planned)
        return {OBJECTIVE: float(np.max(curve))}

    def _run_together(self, trial, *, epochs: int) -> tuple[list[dict], list[float]] | None:
        """The repeats trained as one model (``bench.tuning.together``); None where this
        trial must run one repeat at a time (nothing is written then)."""
        ex = self.execution
        hp = trial.hyperparameters
        started = time.perf_counter()
        seeds = repeat_seeds(ex.seed, ex.repeats)
        # Executions that train on the cache's features count once, as they train alone
        # when the stack gives up or a member's loss broke.
        counts = self._fast_path_counts()
        try:
            outcome = self._train_stack(trial, epochs=epochs, seeds=seeds)
        except DiskFull:
            raise
        except Exception as error:  # noqa: BLE001 (training alone may not fail; it says)
            self.together.give_up(hp, seeds=seeds, error=error, trial_id=trial.trial_id)
            outcome = None
        if outcome is None:
            self._set_fast_path_counts(counts, rerun=False)  # keeps its give-up counted
            return None
        runs, tests = outcome
        self.together.trials += 1
        self.large_evaluations += len(runs) * self._evaluates_larger(ex.evaluation_batch_size)
        seconds = (time.perf_counter() - started) / len(runs)
        results = []
        for repeat, run in enumerate(runs, start=1):
            for row in run.recorder.rows:
                ex.table.append(row)
                self.progress.epoch_end(row)
            curve = [row["val_accuracy"] for row in run.recorder.rows]
            results.append(self._repeat_result(repeat, curve, seconds=seconds))
        return results, tests

    def _train_stack(self, trial, *, epochs: int, seeds: list[int]) -> tuple | None:
        """The trial's repeats trained together, and their test accuracies; None where a
        member's loss broke (nothing is written: the rows are written by the caller)."""
        ex = self.execution
        hp = trial.hyperparameters
        stack = self.together.prepare(hp, seeds=seeds)
        if stack is None:
            return None
        runs = []
        for repeat, (seed, member) in enumerate(zip(seeds, stack.members), start=1):
            # Rows are written once all members finished, in repeat order, as alone.
            recorder = EpochRecorder(
                None, fixed={"run_id": ex.run_id, "trial_id": trial.trial_id,
                             "repeat": repeat, "seed": seed, **self._values(hp)},
                parts=member, settable=self.hypermodel.space.epoch_columns)
            runs.append(FitRun(train=ex.data.train, validation=ex.data.validation,
                               epochs=epochs, batch_size=ex.batch_size, recorder=recorder,
                               evaluation_batch_size=ex.evaluation_batch_size, seed=seed))
        self.together.fit(stack, runs=runs,
                          weights_keys=[self._weights_key(hp, seed) for seed in seeds])
        if any(run.recorder.failure is not None for run in runs):
            self.together.retried += 1
            return None
        return runs, self.together.test_accuracies(stack, ex.data.test,
                                                   batch_size=ex.evaluation_batch_size)

    def _held_data(self) -> dict:
        """``FitRun``'s copies of the run's splits made once for every execution: the
        training split on the device (JAX) and the validation split as one batch."""
        if self._held is None:
            data = self.execution.data
            self._held = {
                "on_device": OnDevice.of(data.train) if self.device_data else None,
                "one_validation": OneBatch.of(data.validation)
                if len(data.validation) <= self.execution.evaluation_batch_size else None}
        return self._held

    def _test_batch(self) -> OneBatch | None:
        """The test split as one batch, converted once for the whole run."""
        test = self.execution.data.test
        if self._one_test_batch is None and len(test) <= self.execution.evaluation_batch_size:
            self._one_test_batch = OneBatch.of(test)
        return self._one_test_batch

    def _weights_key(self, hp, seed: int) -> tuple:
        """What fixes a backbone's initial weights: the source weights for pretrained and
        imagenet, the seed for random."""
        init = self.hypermodel.space.value(hp, "init")
        return (init, seed) if init == "random" else (init,)

    def _tensorboard(self, trial, repeat: int) -> list:
        """TensorBoard logs with KerasTuner's HParams dashboard, one folder per execution."""
        if self.tensorboard_dir is None:
            return []

        callbacks = [keras.callbacks.TensorBoard(log_dir=str(self.tensorboard_dir))]
        self._configure_tensorboard_dir(callbacks, trial, repeat - 1)
        return callbacks

    def on_trial_end(self, trial):
        # What trials.csv adds to KerasTuner's record (test accuracy, seconds, duplicate)
        # goes beside trial.json *before* KerasTuner marks the trial ended, so a kill at
        # any moment after that leaves it for --resume to read.
        extras = self.trial_extras.setdefault(trial.trial_id, {})
        if trial.status != "COMPLETED" and not extras.get("duplicate_of"):
            extras["error"] = trial_error(trial, extras)  # KerasTuner's RPC drops the message
        write_json(extras_path(self.get_trial_dir(trial.trial_id)), extras)
        if self.after_trial is not None:
            self.after_trial()
        stopped = None
        try:
            super().on_trial_end(trial)
        except RuntimeError as error:
            if CONSECUTIVE_FAILURES not in str(error).lower():
                raise
            end_at_failure_limit(self.oracle, trial.trial_id)
            self.save()
            # With nothing left to run the search ends by itself (the run notes why).
            stopped = failure_limit_stop(
                self.oracle, nothing_left_to_run=self.nothing_left_to_run or (lambda _: False),
                extras=lambda trial_id: self.trial_extras.get(trial_id, {}))
        ended = self.oracle.get_trial(trial.trial_id)
        duplicate = extras.get("duplicate_of")
        status = "DUPLICATE" if duplicate else ended.status
        score = ended.score if status == "COMPLETED" else None
        self.progress.trial_end(trial.trial_id, status, score,
                                note=trial_error(trial, extras) if status != "COMPLETED" else "")
        self.write_trials()
        if self.after_trial is not None:
            self.after_trial()
        if stopped is not None:
            raise stopped

    def trial_error(self, trial) -> str:
        """One line on why a trial did not complete (empty for a completed one)."""
        return trial_error(trial, self.trial_extras.get(trial.trial_id, {}))

    def trial_rows(self) -> list[dict]:
        return trial_rows(self.oracle.trials, self.trial_extras, space=self.hypermodel.space,
                          columns=self.execution.columns)

    def write_trials(self) -> None:
        if self._is_worker():
            return  # The chief writes the merged tables.
        run_dir = self.execution.run_dir
        table = summarise_trials(read_epochs(run_dir), self.trial_rows(),
                                 self.execution.columns)
        write_csv(run_dir.trials_csv, table)


def at_failure_limit(trials, *, nothing_left: bool) -> str:
    """What KerasTuner's limit on trials failing in a row, reached with ``trials``, does:
    "stop" the study while trials are left to start, or when none completed (a study of
    failures alone fails); "end" as it would have when none is left to start and one
    completed; "wait" while none is left to start but some still run (in other workers:
    KerasTuner checks the limit again as each ends)."""
    if not nothing_left:
        return "stop"
    if any(t.status == "RUNNING" for t in trials):
        return "wait"
    return "end" if any(t.status == "COMPLETED" for t in trials) else "stop"


def failure_limit_met(oracle) -> str | None:
    """The id of the trial whose end met KerasTuner's limit on trials failing in a row, by
    KerasTuner's own rule (that many FAILED in a row anywhere in the order trials ended),
    or None where it was not met."""
    in_a_row = 0
    for trial_id in oracle.end_order:
        in_a_row = in_a_row + 1 if oracle.trials[trial_id].status == "FAILED" else 0
        if in_a_row == oracle.max_consecutive_failed_trials:
            return trial_id
    return None


def failure_limit_stop(oracle, *, nothing_left_to_run, extras) -> FailureLimit | None:
    """The ``FailureLimit`` that stops a study whose trials met KerasTuner's limit, where
    ``at_failure_limit`` says "stop"; None where it was not met, or nothing is left to stop
    (yet). ``nothing_left_to_run(trials)`` and ``extras(trial_id)`` are the study's."""
    trial_id = failure_limit_met(oracle)
    if trial_id is None:
        return None
    trials = list(dict(oracle.trials).values())
    if at_failure_limit(trials, nothing_left=nothing_left_to_run(trials)) != "stop":
        return None
    return FailureLimit.at(limit=oracle.max_consecutive_failed_trials, trial_id=trial_id,
                           why=trial_error(oracle.trials[trial_id], extras(trial_id)))


def limit_note(limit: int) -> str:
    return (f"the last {limit} trials failed in a row (KerasTuner's limit), but no trial "
            "was left to run")


def end_at_failure_limit(oracle, trial_id: str) -> None:
    """KerasTuner raises at the consecutive-failure limit before saving the trial that
    reached it, leaving it RUNNING on disk: finish its bookkeeping."""
    oracle._save_trial(oracle.trials[trial_id])  # noqa: SLF001 (no public way to persist it)
    oracle.ongoing_trials = {k: v for k, v in oracle.ongoing_trials.items()
                             if v.trial_id != trial_id}
    oracle.save()


def hyperparameter_values(hp, *, space, columns: list[str]) -> dict:
    """The value of every hyperparameter column; None (an empty cell) for a declared
    hyperparameter that is inactive in this trial (its condition is not met)."""
    declared = {p.name for p in hp.space}
    return {name: None if name in declared and name not in hp.values
            else space.value(hp, name) for name in columns}


def trial_error(trial, extras: dict) -> str:
    """One line on why a trial did not complete (empty for a completed one)."""
    duplicate = extras.get("duplicate_of")
    if duplicate:
        return (f"the oracle proposed the same configuration as trial {duplicate}; not "
                f"run again, and {duplicate}'s score was reported to it")
    if extras.get("error"):
        return extras["error"]
    line = error_line(trial.message or "")
    repeat = extras.get("failed_repeat")
    if line and repeat is not None and f"of repeat {repeat}" not in line:
        line += f" (in repeat {repeat})"
    return line


#: Terminal colour codes: Keras writes the heart of an error in bold.
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
#: Lines of an error message that say where it happened, not why (Keras's, TensorFlow's).
_WHERE = re.compile(r"^(?:Arguments received|•|Detected at node|\[\[)")


def error_line(message: str) -> str:
    """Why a trial failed, in one line, from its formatted traceback (KerasTuner keeps
    ``traceback.format_exc()``): the last exception's ``Name: text``; where that text only
    introduces the reason (Keras's "Exception encountered when calling Reshape.call().",
    TensorFlow's "Graph execution error:"), with the first line of the message that gives
    it, not the traceback's last line (for Keras's errors, the layer's arguments)."""
    lines = [line.rstrip() for line in _COLOUR.sub("", message).strip().splitlines()]
    start = max((i for i, line in enumerate(lines)
                 if line.startswith("Traceback (most recent call last)")), default=-1)
    after = lines[start + 1:]
    at = next((i for i, line in enumerate(after) if line and not line[0].isspace()), None)
    if at is None:
        return lines[-1].strip() if lines else ""
    header = re.sub(r"^(?:\w+\.)*FailedTrialError: ", "", after[at])
    header = re.sub(r"^(?:\w+\.)+(\w+(?:Error|Exception)\b)", r"\1", header)
    if header.endswith(":") or "Exception encountered when calling" in header:
        reason = next((line for line in after[at + 1:] if line and not line[0].isspace()
                       and not _WHERE.match(line)), None)
        if reason is not None:
            header = f"{header} {reason}"
    return header


def trial_rows(trials: dict, extras: dict[str, dict], *, space, columns: list[str]) -> list[dict]:
    """One row per trial for ``trials.csv``, from KerasTuner's trials and what the suite
    added to each (test accuracy, seconds, memory, the trial it duplicates, its error)."""
    rows = []
    for trial_id, trial in sorted(trials.items()):
        added = extras.get(trial_id, {})
        rows.append({
            "trial_id": trial_id,
            "status": "DUPLICATE" if added.get("duplicate_of") else trial.status,
            **hyperparameter_values(trial.hyperparameters, space=space, columns=columns),
            **{k: v for k, v in added.items() if k not in ("duplicate_of", "error")},
            "error": trial_error(trial, added) if trial.status != "COMPLETED"
            or added.get("duplicate_of") else "",
        })
    return rows
