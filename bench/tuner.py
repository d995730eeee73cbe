"""The worker loop: one KerasTuner Tuner that runs every trial as repeats with fixed seeds.

KerasTuner's own loop builds, fits and keeps the best epoch. This Tuner keeps its
oracle, project directory and trial bookkeeping, and replaces the execution: each repeat
sets the global seed itself (the oracle's seed only drives sampling), builds the model,
lets the search space fit it with a recorder that writes every epoch, and evaluates the
held-out test split, which the tuner never sees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras_tuner
import numpy as np

from bench.datasets import Split, TransferData
from bench.progress import Progress
from bench.recording import CsvAppender, EpochRecorder
from bench.results import RunDir, read_epochs, summarise_trials, write_csv
from bench.reuse import CompiledModels
from bench.tuners import OBJECTIVE


@dataclass
class FitRun:
    """What a search space's ``fit`` works with for one execution."""

    train: Split
    validation: Split
    epochs: int
    batch_size: int
    recorder: EpochRecorder
    callbacks: list = field(default_factory=list)
    seed: int | None = None  # the execution's seed: each epoch's shuffle order from it

    def fit(self, model, *, epochs: int, initial_epoch: int = 0,
            steps_per_epoch: int | None = None):
        """``model.fit`` on the training split, validated every epoch, every epoch recorded.

        Epochs count on across calls: a second phase passes ``initial_epoch``.
        ``steps_per_epoch`` shortens an epoch to that many batches (None: all of them).
        """
        if steps_per_epoch is not None:
            # Keras stops at the end of the arrays; repeat the rows so every short epoch
            # gets its batches, in a new order each time.
            needed = steps_per_epoch * self.batch_size * (epochs - initial_epoch)
            order = np.concatenate([np.random.permutation(len(self.train))
                                    for _ in range(-(-needed // len(self.train)))])[:needed]
            images, labels = self.train.images[order], self.train.labels[order]
        else:
            images, labels = self.train.images, self.train.labels
        return model.fit(
            images, labels,
            validation_data=(self.validation.images, self.validation.labels),
            epochs=epochs, initial_epoch=initial_epoch, batch_size=self.batch_size,
            steps_per_epoch=steps_per_epoch,
            callbacks=[self.recorder, *_shuffle_seeds(self.seed), *self.callbacks], verbose=0,
        )


def _shuffle_seeds(seed: int | None) -> list:
    """Seeds NumPy at each epoch's start, where Keras draws the epoch's shuffle order.

    On the JAX backend Keras shuffles with ``np.random.permutation``, and the first ``fit``
    of a new model draws one more order than a reused model's (to trace the step), so
    without this a reused model would see its batches in another order.
    """
    if seed is None:
        return []
    import keras

    class SeedEachEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            np.random.seed((seed * 100_003 + epoch) % 2**32)

    return [SeedEachEpoch()]


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


class BenchTuner(keras_tuner.Tuner):
    """A Tuner whose executions are seeded repeats, recorded epoch by epoch."""

    def __init__(self, *, oracle, hypermodel, directory, project_name,
                 execution: Execution, progress: Progress, reuse_models: bool = True,
                 tensorboard_dir=None):
        super().__init__(oracle=oracle, hypermodel=hypermodel, directory=directory,
                         project_name=project_name)
        self.execution = execution
        self.tensorboard_dir = tensorboard_dir
        self.models = CompiledModels(hypermodel, enabled=reuse_models)
        self.progress = progress
        self.trial_extras: dict[str, dict] = {}

    def _values(self, hp) -> dict:
        space = self.hypermodel.space
        return {name: space.value(hp, name) for name in self.execution.columns}

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        declared = {k: v for k, v in trial.hyperparameters.values.items()
                    if not k.startswith("tuner/")}
        self.progress.trial_begin(trial.trial_id, declared)

    def run_trial(self, trial, *args, **kwargs):
        ex = self.execution
        hp = trial.hyperparameters
        # Hyperband sets each trial's epochs; it trains from scratch here (no warm start).
        epochs = int(hp.values.get("tuner/epochs", ex.epochs))
        started = time.perf_counter()
        results, tests = [], []
        for repeat, seed in enumerate(repeat_seeds(ex.seed, ex.repeats), start=1):
            repeat_start = time.perf_counter()
            parts = self.models.prepare(hp, seed=seed)
            recorder = EpochRecorder(
                ex.table,
                fixed={"run_id": ex.run_id, "trial_id": trial.trial_id, "repeat": repeat,
                       "seed": seed, **self._values(hp)},
                parts=parts, on_epoch=self.progress.epoch_end,
            )
            run = FitRun(train=ex.data.train, validation=ex.data.validation, epochs=epochs,
                         batch_size=ex.batch_size, recorder=recorder,
                         callbacks=self._tensorboard(trial, repeat), seed=seed)
            self.hypermodel.space.fit(parts, hp=hp, run=run)
            curve = [row["val_accuracy"] for row in recorder.rows]
            if not curve:
                raise keras_tuner.errors.FailedTrialError("the space's fit() ran no epoch")
            _, test_accuracy = parts.model.evaluate(ex.data.test.images, ex.data.test.labels,
                                                    batch_size=256, verbose=0)
            tests.append(float(test_accuracy))
            self.progress.repeat_end(repeat=repeat, final=curve[-1],
                                     best_epoch=int(np.argmax(curve)) + 1,
                                     seconds=time.perf_counter() - repeat_start)
            results.append({OBJECTIVE: float(np.max(curve))})
        self.trial_extras[trial.trial_id] = {
            "test_accuracy": float(np.mean(tests)),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return results

    def _tensorboard(self, trial, repeat: int) -> list:
        """TensorBoard logs with KerasTuner's HParams dashboard, one folder per execution."""
        if self.tensorboard_dir is None:
            return []
        import keras

        callbacks = [keras.callbacks.TensorBoard(log_dir=str(self.tensorboard_dir))]
        self._configure_tensorboard_dir(callbacks, trial, repeat - 1)
        return callbacks

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        ended = self.oracle.trials[trial.trial_id]
        score = ended.score if ended.status == "COMPLETED" else None
        self.progress.trial_end(trial.trial_id, ended.status, score)
        self.write_trials()

    def trial_rows(self) -> list[dict]:
        rows = []
        for trial_id, trial in sorted(self.oracle.trials.items()):
            hp = trial.hyperparameters
            message = (trial.message or "").strip().splitlines()
            rows.append({
                "trial_id": trial_id,
                "status": trial.status,
                **self._values(hp),
                **self.trial_extras.get(trial_id, {}),
                "error": message[-1] if message else "",
            })
        return rows

    def write_trials(self) -> None:
        run_dir = self.execution.run_dir
        table = summarise_trials(read_epochs(run_dir), self.trial_rows(),
                                 self.execution.columns)
        write_csv(run_dir.trials_csv, table)
