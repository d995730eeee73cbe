"""Per-epoch rows: one per trial x repeat x epoch, equal to what Keras reported."""

import csv
import re

import numpy as np
import pandas as pd
import pytest

from bench.models.backbones import BACKBONES
from bench.models.model import assemble
from bench.tuning.bench_tuner import FitRun
from bench.tuning.recording import METRICS, CsvAppender, EpochRecorder, epoch_columns


def test_recorded_rows_equal_the_keras_history(digits, tmp_path, seed):
    import keras

    parts = assemble(BACKBONES["resnet-mini"], image_size=16, num_classes=5, init="random")
    parts.freeze(2)
    parts.model.compile(optimizer=keras.optimizers.Adam(3e-3),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    columns = epoch_columns(["init", "frozen_blocks"])
    table = CsvAppender(tmp_path / "epochs.csv", columns)
    recorder = EpochRecorder(table, fixed={"run_id": "r", "trial_id": "00", "repeat": 1,
                                           "seed": seed, "init": "random", "frozen_blocks": 2},
                             parts=parts)
    run = FitRun(train=digits.train, validation=digits.validation, epochs=3, batch_size=32,
                 recorder=recorder)
    history = run.fit(parts.model, epochs=3)
    table.close()

    rows = pd.read_csv(tmp_path / "epochs.csv")
    assert list(rows.columns) == columns
    assert rows["epoch"].tolist() == [1, 2, 3]
    for metric in METRICS:
        np.testing.assert_allclose(rows[metric], history.history[metric], rtol=1e-6)
    assert (rows["trainable_params"] == parts.trainable_params).all()
    assert (rows["frozen_layers"] == parts.frozen_layers).all() and parts.frozen_layers > 0
    assert (rows["epoch_seconds"] > 0).all()


def test_rows_are_appended_and_flushed_as_each_epoch_ends(tmp_path):
    table = CsvAppender(tmp_path / "t.csv", ["a", "b"])
    table.append({"a": 1, "b": 2})
    # Read while still open: the row is already on disk.
    assert list(csv.reader(open(tmp_path / "t.csv"))) == [["a", "b"], ["1", "2"]]
    table.close()
    again = CsvAppender(tmp_path / "t.csv", ["a", "b"])
    again.append({"a": 3, "b": 4})
    again.close()
    assert list(csv.reader(open(tmp_path / "t.csv"))) == [["a", "b"], ["1", "2"], ["3", "4"]]


def test_a_run_writes_trials_x_repeats_x_epochs_rows(tiny_run):
    from bench.results import RunDir, read_epochs, read_run, read_trials

    run_dir = RunDir(tiny_run)
    epochs = read_epochs(run_dir)
    trials = read_trials(run_dir)
    run = read_run(run_dir)
    assert run["status"] == "completed"
    assert len(trials) == 2 and set(trials["status"]) == {"COMPLETED"}
    assert len(epochs) == 2 * 2 * 2
    assert sorted(epochs.groupby(["trial_id", "repeat"]).size().tolist()) == [2, 2, 2, 2]
    assert list(epochs.columns[:5]) == ["run_id", "trial_id", "repeat", "seed", "epoch"]
    assert {"init", "frozen_blocks", "head_lr", "frozen_layers", "trainable_params", "loss",
            "accuracy", "val_loss", "val_accuracy", "epoch_seconds"} <= set(epochs.columns)
    # Both inits ran with the same seeds: the comparison is paired.
    seeds = epochs.groupby("init")["seed"].apply(lambda s: sorted(set(s)))
    assert seeds["pretrained"] == seeds["random"] == [1, 2]
    assert set(epochs["frozen_blocks"]) == {2}
    # trials.csv agrees with the rows it was computed from.
    for trial in trials.itertuples():
        mine = epochs[epochs["trial_id"] == trial.trial_id]
        finals = mine[mine["epoch"] == 2]["val_accuracy"]
        assert trial.final_val_accuracy == np.float64(finals.mean())
        assert 0 <= trial.test_accuracy <= 1


def test_each_repeats_test_accuracy_is_kept_and_the_json_is_strict(tiny_run):
    # trials.csv's test_accuracy is a mean over repeats; the repeats behind it are kept,
    # in JSON that strict readers take (no bare NaN for the memory a CPU has no figure for).
    import json

    def strict(text):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}"))

    trials = pd.read_csv(tiny_run / "trials.csv", dtype={"trial_id": str})
    repeats = json.loads((tiny_run / "run.json").read_text())["settings"]["repeats"]
    for row in trials.itertuples():
        extras = strict((tiny_run / "tuner" / f"trial_{row.trial_id}" / "bench_extras.json")
                        .read_text())
        assert len(extras["test_accuracies"]) == repeats
        assert sum(extras["test_accuracies"]) / repeats == pytest.approx(row.test_accuracy)
    strict((tiny_run / "run.json").read_text())


def test_a_note_within_a_trial_starts_its_own_line_on_a_terminal():
    # A worker's "the chief has not answered" comes while an epoch ticks in place.
    import io
    import re

    from bench.tuning.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

        def screen(self) -> list[str]:
            """The lines a terminal shows: a carriage return goes to the line's start, ESC[K erases
            from there to its end, and other characters overwrite."""
            lines, line, column = [], [], 0
            for token in re.findall("\r|\n|\033\\[K|.", self.getvalue()):
                if token == "\n":
                    lines.append("".join(line))
                    line, column = [], 0
                elif token == "\r":
                    column = 0
                elif token == "\033[K":
                    del line[column:]
                else:
                    line[column:column + 1] = [token]
                    column += 1
            return [*lines, "".join(line)]

    terminal = Terminal()
    progress = Progress(total_trials=2, repeats=1, epochs=3, stream=terminal)
    progress.trial_begin("0", {"head_lr": 0.01})
    progress.epoch_end({"repeat": 1, "epoch": 1, "val_accuracy": 0.5})
    progress.note("worker w0: the chief at h:1 has not answered for 15 s")
    progress.epoch_end({"repeat": 1, "epoch": 2, "val_accuracy": 0.6})
    assert terminal.screen() == [
        "  worker w0: the chief at h:1 has not answered for 15 s",
        "  trial 1/2 (id 0) [head_lr=0.01] repeat 1/1 epoch 2: val_accuracy 0.600"]


def test_a_worker_counts_its_own_trials_and_says_so():
    # Found by a new user: a worker's "trial 2 (id 3)" read as the study's second trial.
    import io

    from bench.tuning.progress import Progress

    stream = io.StringIO()
    progress = Progress(total_trials=None, repeats=1, epochs=1, stream=stream, worker=True)
    for trial_id in ("1", "3"):
        progress.trial_begin(trial_id, {"head_lr": 0.01})
        progress.repeat_end(repeat=1, final=0.5, best_epoch=1, seconds=1.0)
    assert stream.getvalue().splitlines() == [
        "  this worker's trial 1 (id 1) [head_lr=0.01] repeat 1/1: final val_accuracy 0.500 "
        "(best at epoch 1) in 1.0 s",
        "  this worker's trial 2 (id 3) [head_lr=0.01] repeat 1/1: final val_accuracy 0.500 "
        "(best at epoch 1) in 1.0 s"]



@pytest.mark.parametrize("done, kept", [(0, "no trial had ended"),
                                        (3, "the 3 trial(s) kept took 41 s")])
def test_a_resumed_run_s_time_is_said_to_be_since_the_resume(done, kept):
    import io

    from bench.tuning.progress import Progress

    stream = io.StringIO()
    progress = Progress(total_trials=5, repeats=1, epochs=1, stream=stream, done=done,
                        kept_seconds=40.6)
    progress.trial_begin("7", {"head_lr": 0.01})
    progress.trial_end("7", "COMPLETED", 0.5)
    assert re.fullmatch(rf"  -> trial 7 completed: objective 0.500; best so far 0.500 "
                        rf"\(trial 7\); \d+ s elapsed since the resume \({re.escape(kept)}\)\n",
                        stream.getvalue()), stream.getvalue()


STOPS_AFTER_ONE = '''
import keras

from bench.space import SearchSpace, SpaceSettings


class StopAfterOne(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


class StopsEarly(SearchSpace):
    description = "a fit hook whose callback stops every execution after its first epoch"
    settings = SpaceSettings(init="random", epochs=3, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [0.01])

    def fit(self, parts, *, hp, run):
        run.callbacks.append(StopAfterOne())
        return [run.fit(parts.model, epochs=run.epochs)]
'''


def test_an_execution_stopped_early_says_at_which_epoch(tmp_path, cache_dir, capsys):
    """Found by a new user: "final val_accuracy 0.673" of an execution a space's early
    stopping ended at epoch 2 of 4 read as if it had trained all 4."""
    from conftest import IMAGE_SIZE

    from bench.plan import RunSpec
    from bench.results import RunDir, read_epochs
    from bench.runner import run_study

    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "stops.py").write_text(STOPS_AFTER_ONE)
    run = RunDir(run_study(RunSpec(space="stops", spaces_dir=spaces, image_size=IMAGE_SIZE,
                                   results_dir=tmp_path, name="stops", cache_dir=cache_dir),
                           log=lambda *_: None))
    assert read_epochs(run)["epoch"].tolist() == [1]
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "repeat 1/1:" in line]
    assert "(at epoch 1 of 3, stopped early; best at epoch 1) in " in line
