"""Issue 8 in real runs: a failed or NaN trial is recorded as failed and never wins, the
consecutive-failure limit ends a run cleanly, conditional spaces and tuner notices."""

import json
import math
import os
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import IMAGE_SIZE
from test_cli import run_bench

from bench.analysis.summary import print_summary
from bench.plan import RunSpec, plan_study
from bench.results import RunDir, read_epochs, read_run, read_trials
from bench.runner import ScaleOut, run_study
from bench.tuning.recording import CsvAppender, EpochRecorder, epoch_columns
from bench.tuning.resume import resume_spec

NAN_SPACE = '''
from bench.space import SearchSpace, SpaceSettings


class Nan(SearchSpace):
    description = "a sane head learning rate and one that makes the loss NaN"
    version = 1
    settings = SpaceSettings(init="random", frozen_blocks=0, epochs=2, repeats=2)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [1e38, 1e-3])
'''

RAISES_SPACE = '''
from bench.space import SearchSpace, SpaceSettings


class Raises(SearchSpace):
    description = "one epoch, then an error for the larger head learning rate"
    version = 1
    settings = SpaceSettings(init="random", frozen_blocks=0, epochs=2, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [1e-3, {bad}])

    def fit(self, parts, *, hp, run):
        first = run.fit(parts.model, epochs=1)
        if hp.get("head_lr") >= {bad}:
            raise RuntimeError("broken on purpose after one epoch")
        return [first, run.fit(parts.model, epochs=2, initial_epoch=1)]
'''

CONDITIONAL_SPACE = '''
from bench.space import SearchSpace, SpaceSettings


class Conditional(SearchSpace):
    description = "frozen depth only matters for the pretrained backbone"
    version = 1
    settings = SpaceSettings(epochs=1, repeats=1, frozen_blocks=0)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        with hp.conditional_scope("init", ["pretrained"]):
            hp.Choice("frozen_blocks", [0, num_blocks])
'''


def _spaces(tmp_path, **files):
    folder = tmp_path / "spaces"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(text))
    return folder


def _head_lr_space(tmp_path, name: str, head_lrs: list[float]):
    """A space of one trial per head learning rate (random init, nothing frozen, one
    epoch, one repeat); a huge rate makes its trial's loss NaN in the first epoch."""
    _spaces(tmp_path, **{name: f'''
        from bench.space import SearchSpace, SpaceSettings


        class HeadLr(SearchSpace):
            description = "head learning rates, some of them diverging"
            version = 1
            settings = SpaceSettings(init="random", frozen_blocks=0, epochs=1, repeats=1)

            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", {head_lrs!r})
    '''})


def _run(tmp_path, space, cache_dir, **options):
    spec = RunSpec(space=space, spaces_dir=tmp_path / "spaces", image_size=IMAGE_SIZE,
                   pretrain_epochs=2, results_dir=tmp_path / "results", name=space,
                   cache_dir=cache_dir, train_per_class=options.pop("train_per_class", 10),
                   **options)
    return RunDir(run_study(spec, log=lambda *_: None))


def test_a_nan_trial_fails_and_never_wins(tmp_path, cache_dir):
    _spaces(tmp_path, nan=NAN_SPACE)
    run = _run(tmp_path, "nan", cache_dir, together=True)
    trials = read_trials(run).set_index("head_lr")
    bad, good = trials.loc[1e38], trials.loc[1e-3]
    assert bad["status"] == "FAILED" and good["status"] == "COMPLETED"
    assert bad["error"] == "loss became nan at epoch 1 of repeat 1"
    assert math.isnan(bad["best_val_accuracy"]) and math.isnan(bad["final_val_accuracy"])
    assert math.isnan(bad["test_accuracy"])
    assert bad["epochs_completed"] == 1 and good["epochs_completed"] == 2 * 2
    # The good trial's repeats trained together; the NaN one ran again one repeat at a
    # time, so its rows are what training alone writes (checked above).
    assert read_run(run)["together"] == {"trials": 1, "retried_alone": 1}
    # KerasTuner was never given a score for it.
    oracle_trial = json.loads((run.tuner / f"trial_{bad['trial_id']}" / "trial.json")
                              .read_text())
    assert oracle_trial["status"] == "FAILED" and oracle_trial["score"] is None
    # The NaN epoch is in epochs.csv (it ran) but nowhere in the report's numbers.
    epochs = read_epochs(run)
    assert epochs[epochs["trial_id"] == bad["trial_id"]]["loss"].isna().all()
    report = (run.path / "report.md").read_text()
    best_table = report.split("## Accuracy against epochs")[0]
    assert "1e+38" not in best_table.split("Best configuration")[1]
    trials_section = report.split("## Trials")[1]
    assert trials_section.index(f"| {good['trial_id']} |") < \
        trials_section.index(f"| {bad['trial_id']} |")
    assert "loss became nan at epoch 1 of repeat 1" in report.split("## Failed")[1]


def test_a_trial_that_raises_keeps_no_partial_score(tmp_path, cache_dir, capsys):
    _spaces(tmp_path, raises=RAISES_SPACE.format(bad="0.01"))
    run = _run(tmp_path, "raises", cache_dir)
    trials = read_trials(run).set_index("head_lr")
    bad = trials.loc[0.01]
    assert bad["status"] == "FAILED" and bad["epochs_completed"] == 1
    assert bad["error"] == "RuntimeError: broken on purpose after one epoch"
    assert math.isnan(bad["best_val_accuracy"])
    assert trials.loc[1e-3, "status"] == "COMPLETED"
    # The trial's end line names its values (it printed no repeat line that would).
    assert (f"-> trial {bad['trial_id']} failed (RuntimeError: broken on purpose after one "
            "epoch) [head_lr=0.01]: objective -") in capsys.readouterr().out
    # The console table, like the report, shows the failed trial's missing scores as "-".
    print_summary(run.path)
    console = capsys.readouterr().out
    failed_row = next(line for line in console.splitlines() if line.rstrip().endswith("FAILED"))
    assert "NaN" not in console and failed_row.split().count("-") == 3


RESTARTS_SPACE = '''
from bench.space import SearchSpace, SpaceSettings


class Restarts(SearchSpace):
    description = "a second fit that forgets initial_epoch, for one head rate"
    version = 1
    settings = SpaceSettings(init="random", frozen_blocks=0, epochs=2, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("head_lr", [1e-3, 1e-2])

    def fit(self, parts, *, hp, run):
        first = run.fit(parts.model, epochs=1)
        start = 1 if hp.get("head_lr") == 1e-3 else 0
        return [first, run.fit(parts.model, epochs=2, initial_epoch=start)]
'''


def test_a_fit_that_numbers_its_epochs_from_1_again_fails_its_trial(tmp_path, cache_dir):
    # Its rows would read epoch 1, epoch 1: "final" would be either fit's, at random.
    _spaces(tmp_path, restarts=RESTARTS_SPACE)
    trials = read_trials(_run(tmp_path, "restarts", cache_dir)).set_index("head_lr")
    assert trials.loc[1e-3, "status"] == "COMPLETED"
    assert trials.loc[1e-3, "epochs_completed"] == 2
    assert trials.loc[1e-2, "status"] == "FAILED"
    assert trials.loc[1e-2, "error"] == ("epoch 1 was recorded after epoch 1: a fit that "
                                         "continues training must pass initial_epoch=1 of "
                                         "repeat 1")


LOGITS_FOR_RANDOM_SPACE = '''
import keras

from bench.space import SearchSpace, SpaceSettings


class LogitsForRandom(SearchSpace):
    description = "a head without its softmax for random init only"
    version = 1
    settings = SpaceSettings(frozen_blocks=0, epochs=1, repeats=1)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])

    def build_head(self, features, *, num_classes, hp):
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        activation = None if hp.get("init") == "random" else "softmax"
        return keras.layers.Dense(num_classes, activation=activation)(pooled)
'''


@pytest.mark.parametrize("reuse", [True, False])
def test_a_head_returning_logits_fails_its_trial_not_only_the_first_build(
        tmp_path, cache_dir, reuse):
    # The pre-flight check builds the first configuration (pretrained: probabilities);
    # the random trial's head returns logits, which the loss would take as
    # probabilities: that trial must fail, whether its model is a new one or reused.
    _spaces(tmp_path, logits=LOGITS_FOR_RANDOM_SPACE)
    run = _run(tmp_path, "logits", cache_dir, reuse_models=reuse, repeats=2)
    trials = read_trials(run).set_index("init")
    assert trials.loc["pretrained", "status"] == "COMPLETED"
    assert trials.loc["random", "status"] == "FAILED"
    assert trials.loc["random", "error"].startswith(
        "BenchError: the head of space logits returns logits, not probabilities")
    # From review: refused as a graph, at every seed, not "(in repeat 1)".
    assert "in repeat" not in trials.loc["random", "error"]
    assert math.isnan(trials.loc["random", "best_val_accuracy"])
    assert "pretrained minus random" not in (run.path / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [None, 2])
def test_the_consecutive_failure_limit_ends_the_run_cleanly(tmp_path, workers):
    # Every learning rate diverges: each trial's loss is NaN in its first epoch. Under
    # KerasTuner's own chief/worker mode the worker at the limit dies of a gRPC error
    # and the chief waits for ever; here the study ends the same way as in one process.
    spaces = _spaces(tmp_path, allfail='''
        from bench.space import SearchSpace, SpaceSettings


        class AllFail(SearchSpace):
            description = "every head learning rate diverges"
            version = 1
            settings = SpaceSettings(init="random", epochs=2, repeats=1)

            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [1e38, 2e38, 3e38, 4e38])
    ''')
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    result = run_bench("run", "--space", "allfail", "--spaces-dir", str(spaces),
                       "--image-size", "16", "--train-per-class", "10",
                       "--results-dir", str(tmp_path / "results"), "--name", "x",
                       *(["--workers", str(workers)] if workers else []), env=env)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = failed_with = [line for line in result.stderr.splitlines()
                            if line.startswith("error:")]
    assert len(errors) == 1 and "3 trials failed in a row" in errors[0]
    run = RunDir(tmp_path / "results" / "x")
    record = original = read_run(run)
    assert record["status"] == "failed" and "3 trials failed in a row" in record["error"]
    trials = read_trials(run)
    # With two workers the fourth trial may be running when the third fails: it ends too.
    assert set(trials["status"]) == {"FAILED"}
    assert len(trials) == 3 if workers is None else len(trials) in (3, 4)
    assert set(trials["error"]) == {"loss became nan at epoch 1 of repeat 1"}
    for trial_id in trials["trial_id"]:
        state = json.loads((run.tuner / f"trial_{trial_id}" / "trial.json").read_text())
        assert state["status"] == "FAILED"
    report = (run.path / "report.md").read_text()
    assert report.startswith("# Run x (partial: status failed)")
    assert "No execution completed" in report
    # Found by a new user: nothing said that the grid's other trials never ran.
    if len(trials) == 3:
        stopped = ("the search stopped after 3 of 4 trials: KerasTuner's limit on trials "
                   "failing in a row ended it, so 1 planned trial never ran")
        assert stopped in record["notes"] and f"Note: {stopped}" in report
    # Resumed, KerasTuner would count the same failures and stop again: refused.
    resumed = run_bench("run", "--resume", str(run.path), env=env)
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    errors = [line for line in resumed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {run.path} was stopped by KerasTuner's limit on trials failing "
                      "in a row; KerasTuner counts those failures again, so a resumed run "
                      "would stop at its next trial. Its report.md says why each trial "
                      "failed: fix that, then start a new run"]
    assert read_run(run)["status"] == "failed" and read_trials(run).equals(trials)
    # A run written before run.json recorded `failure_limit` is known by its error.
    older = {k: v for k, v in read_run(run).items() if k != "failure_limit"}
    run.run_json.write_text(json.dumps(older))
    again = run_bench("run", "--resume", str(run.path), env=env)
    assert again.returncode == 2 and again.stderr.count("error: ") == 1
    assert "was stopped by KerasTuner's limit on trials failing in a row" in again.stderr
    # Stopped after the limit was met and before run.json said so: resumed, it ends as it
    # would have. KerasTuner alone would run one more trial and stop at its end.
    window = {k: v for k, v in original.items() if k not in ("error", "failure_limit")}
    window |= {"status": "interrupted",
               "notes": [n for n in original["notes"] if "KerasTuner's limit" not in n]}
    run.run_json.write_text(json.dumps(window))
    (run.path / "report.md").unlink()
    ended = run_bench("run", "--resume", str(run.path), env=env)
    assert ended.returncode == 1, ended.stderr[-2000:]
    assert [line for line in ended.stderr.splitlines()
            if line.startswith("error:")] == failed_with
    assert {k: read_run(run).get(k) for k in ("status", "error", "failure_limit", "notes")} \
        == {k: original.get(k) for k in ("status", "error", "failure_limit", "notes")}
    assert read_trials(run).equals(trials)
    assert (run.path / "report.md").read_text().startswith("# Run x (partial: status failed)")
    if workers is None:
        # Stopped earlier still: KerasTuner had saved the third failure's trial.json but
        # not yet the oracle, so its end order lacks that trial and lists it as running.
        oracle_json = run.tuner / "oracle.json"
        state = json.loads(oracle_json.read_text())
        *earlier, last = state["end_order"]
        oracle_json.write_text(json.dumps(state | {"end_order": earlier,
                                                   "ongoing_trials": {"tuner0": last}}))
        run.run_json.write_text(json.dumps(window))
        ended = run_bench("run", "--resume", str(run.path), env=env)
        assert ended.returncode == 1, ended.stderr[-2000:]
        assert [line for line in ended.stderr.splitlines()
                if line.startswith("error:")] == failed_with
        assert read_trials(run).equals(trials)


def test_a_run_where_no_trial_completed_has_failed(tmp_path, cache_dir, capsys):
    # Two trials, both diverging: under KerasTuner's limit of 3 in a row, so the search
    # ends normally, but there is no result: the run failed (exit status 1), not completed.
    _head_lr_space(tmp_path, "twofail", [1e38, 2e38])
    from bench.errors import StudyFailed

    with pytest.raises(StudyFailed) as caught:
        _run(tmp_path, "twofail", cache_dir)
    assert str(caught.value) == ("no trial completed: all 2 failed (why, trial by trial, is "
                                 "in trials.csv and report.md)")
    run = RunDir(tmp_path / "results" / "twofail")
    record = read_run(run)
    assert record["status"] == "failed" and record["error"] == str(caught.value)
    assert list(read_trials(run)["status"]) == ["FAILED", "FAILED"]
    report = (run.path / "report.md").read_text()
    assert report.startswith("# Run twofail (partial: status failed)")
    assert "No execution completed, so there are no final numbers." in report
    # Found by a new user: "Top 2 of 2 trials by best validation accuracy" and "every
    # number below uses the complete executions only", of none.
    assert ("and 2 executions with rows, 0 of them complete, so no number below is a "
            "result.") in report
    capsys.readouterr()
    print_summary(run.path)
    console = capsys.readouterr().out
    assert "The 2 trials: none completed, so none has a score:" in console
    assert "Top" not in console and "complete executions only" not in console


def _drawn_first(tmp_path, *, tuner: str, values: list[float], **options) -> int:
    """The index of the head learning rate that KerasTuner's oracle for the space
    "lastfail" proposes first (the order the test needs, not a number it checks)."""
    from bench.runner import study_oracle

    plan = plan_study(RunSpec(space="lastfail", spaces_dir=tmp_path / "spaces", tuner=tuner,
                              results_dir=tmp_path / "probe", **options))
    oracle = study_oracle(plan)
    oracle._set_project_dir(str(tmp_path / "probe"), "oracle")  # noqa: SLF001
    return values.index(oracle.create_trial("probe").hyperparameters.get("head_lr"))


@pytest.mark.parametrize("tuner, max_trials, workers", [
    ("grid", None, None),
    # Found by a review: random search over a space smaller than --max-trials runs out
    # of combinations, and with its last three failing it was called failed by the limit.
    ("random", 10, None),
    pytest.param("grid", None, 2, marks=pytest.mark.slow),
    pytest.param("random", 10, 2, marks=pytest.mark.slow),
], ids=["grid", "random", "grid-workers", "random-workers"])
def test_failures_in_a_row_at_the_very_end_leave_a_complete_run(
        tmp_path, cache_dir, tuner, max_trials, workers):
    # KerasTuner's limit (3 in a row) is reached by the search's last trial: nothing was
    # left to stop, so the run completed, its failed trials listed as failed. With two
    # workers the sane trial may still run when the third failure ends: the same.
    values = [1e38, 2e38, 3e38]
    _head_lr_space(tmp_path, "lastfail", [1e-3, *values])
    first = _drawn_first(tmp_path, tuner=tuner, values=[1e-3, *values], max_trials=max_trials)
    values.insert(first, 1e-3)  # one sane, three diverge: the sane one proposed first
    _head_lr_space(tmp_path, "lastfail", values)
    run = RunDir(run_study(
        RunSpec(space="lastfail", spaces_dir=tmp_path / "spaces", image_size=IMAGE_SIZE,
                pretrain_epochs=2, results_dir=tmp_path / "results", name="lastfail",
                cache_dir=cache_dir, train_per_class=10, tuner=tuner, max_trials=max_trials),
        log=lambda *_: None, scale=ScaleOut(workers=workers) if workers else None))
    record = read_run(run)
    assert record["status"] == "completed" and not record.get("error")
    trials = read_trials(run)
    assert list(trials["status"]) == ["COMPLETED", "FAILED", "FAILED", "FAILED"]
    assert trials["head_lr"].iloc[0] == 1e-3
    if tuner == "random":
        assert ("the search stopped after 4 of 10 trials: the space has only 4 combinations "
                "and all have run") in record["notes"]
    report = (run.path / "report.md").read_text()
    assert "partial" not in report.splitlines()[0].lower()
    # With workers the sane trial may end between two failures: then no limit was met.
    # KerasTuner's rule: three FAILED in a row anywhere in the order trials ended.
    end_order = json.loads((run.tuner / "oracle.json").read_text())["end_order"]
    status = dict(zip(trials["trial_id"], trials["status"]))
    ended = "".join("F" if status[trial_id] == "FAILED" else "." for trial_id in end_order)
    limit_met = "FFF" in ended
    assert limit_met or workers
    limit = ("the last 3 trials failed in a row (KerasTuner's limit), but no trial was left "
             "to run")
    assert limit_met == (limit in report)
    if workers is None:
        # Stopped after the last trial ended and before run.json said so: resumed, it
        # runs nothing and completes as the uninterrupted run did, with the same notes.
        said_at_the_end = (limit, "the search stopped after")
        window = record | {"status": "interrupted", "notes": [
            n for n in record["notes"] if not n.startswith(said_at_the_end)]}
        run.run_json.write_text(json.dumps(window))
        run_study(resume_spec(run.path, given={}), log=lambda *_: None, resume_from=run.path)
        assert read_run(run)["notes"] == record["notes"]
        assert read_trials(run).equals(trials)


def test_a_finite_huge_loss_is_a_valid_result_and_nan_or_inf_is_not(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    table = CsvAppender(tmp_path / "e.csv", epoch_columns([]))

    class Parts:
        frozen_layers, trainable_params = 0, 3

    for loss, failed in ((6e31, False), (float("inf"), True), (float("nan"), True)):
        recorder = EpochRecorder(table, fixed={"run_id": "r", "trial_id": "0", "repeat": 1,
                                               "seed": 1}, parts=Parts())
        recorder.set_model(model)
        model.stop_training = False
        recorder.on_epoch_begin(0)
        recorder.on_epoch_end(0, {"loss": loss, "accuracy": 0.2, "val_loss": 1.0,
                                  "val_accuracy": 0.2})
        assert (recorder.failure is not None) == failed
        assert model.stop_training == failed
    table.close()


def test_conditional_values_are_empty_cells_and_the_count_is_of_active_combinations(
        tmp_path, cache_dir):
    _spaces(tmp_path, conditional=CONDITIONAL_SPACE)
    run = _run(tmp_path, "conditional", cache_dir)
    trials = read_trials(run)
    assert len(trials) == 3  # pretrained x {0, 4} + random (frozen_blocks inactive)
    random = trials[trials["init"] == "random"].iloc[0]
    assert pd.isna(random["frozen_blocks"])
    epochs = read_epochs(run)
    assert epochs[epochs["init"] == "random"]["frozen_blocks"].isna().all()
    assert sorted(epochs[epochs["init"] == "pretrained"]["frozen_blocks"]) == [0, 4]

    from bench.space import declared_hyperparameters, load_space
    from bench.tuning.algorithms import grid_size

    hp = declared_hyperparameters(load_space("conditional", tmp_path / "spaces"), num_blocks=4)
    assert grid_size(hp) == 3


def test_list_shows_each_condition(tmp_path):
    spaces = _spaces(tmp_path, conditional=CONDITIONAL_SPACE)
    result = run_bench("list", "--spaces-dir", str(spaces))
    assert result.returncode == 0, result.stderr
    assert "frozen_blocks (Choice) {0, 4}, default 0, only when init in {pretrained}" in \
        result.stdout


def test_a_search_that_stops_early_says_why(tmp_path, cache_dir):
    from conftest import TINY_SPACE

    _spaces(tmp_path, tiny=TINY_SPACE)
    run = _run(tmp_path, "tiny", cache_dir, tuner="random", max_trials=5, epochs=1,
               repeats=1)
    assert len(read_trials(run)) == 2
    notes = read_run(run)["notes"]
    assert any("stopped after 2 of 5 trials" in n and "only 2 combinations" in n for n in notes)
    assert "stopped after 2 of 5 trials" in (run.path / "report.md").read_text()


def test_bayesian_says_when_it_is_random_search():
    import keras_tuner

    from bench.tuning.algorithms import tuner_notes

    hp = keras_tuner.HyperParameters()
    hp.Choice("init", ["pretrained", "random"])
    hp.Float("head_lr", 1e-4, 1e-1, sampling="log")
    (note,) = tuner_notes("bayesian", hp, max_trials=5, initial_points=None)
    assert "first 6 completed trials are random" in note and "random search" in note
    assert note.endswith("With --max-trials 5 this search is random search: raise "
                         "--max-trials above 6 or lower --initial-points")
    # Found by a new user: "--max-trials 5" where the space's settings said 5.
    (note,) = tuner_notes("bayesian", hp, max_trials=5, initial_points=None, given=False)
    assert "With max_trials 5 (the space's setting) this search is random search" in note
    (note,) = tuner_notes("bayesian", hp, max_trials=None, initial_points=12, given=False)
    assert "With the default of 10 trials this search is random search" in note
    (note,) = tuner_notes("bayesian", hp, max_trials=5, initial_points=2)
    assert "first 2" in note and "random search" not in note
    assert tuner_notes("grid", hp, max_trials=5, initial_points=None) == []


def test_a_grid_cut_short_by_max_trials_says_how_many_combinations_do_not_run():
    import keras_tuner

    from bench.tuning.algorithms import tuner_notes

    hp = keras_tuner.HyperParameters()
    hp.Choice("init", ["pretrained", "random"])
    hp.Choice("head_lr", [0.1, 0.01, 0.001])  # 2 x 3 = 6 combinations
    assert tuner_notes("grid", hp, max_trials=4, initial_points=None) == [
        "grid: --max-trials 4 runs 4 of the grid's 6 combinations, in KerasTuner's order; "
        "the other 2 do not run, so some values may never be tried (give a --max-trials "
        "of at least 6 to run them all)"]
    assert tuner_notes("grid", hp, max_trials=4, initial_points=None, given=False)[0].startswith(
        "grid: max_trials 4 (the space's setting) runs 4 of the grid's 6 combinations")
    for whole in (None, 6, 7):
        assert tuner_notes("grid", hp, max_trials=whole, initial_points=None) == []


def test_initial_points_only_go_with_the_bayesian_tuner(tmp_path):
    result = run_bench("run", "--initial-points", "2", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "--tuner bayesian" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_proposed_duplicate_is_not_run_again_and_is_recorded(tmp_path, cache_dir):
    """A Gaussian process can propose a finished configuration: the tuner hands the
    oracle the earlier score and trials.csv marks the trial DUPLICATE."""
    import keras_tuner

    from bench.tuning.bench_tuner import BenchTuner

    _spaces(tmp_path, nan=NAN_SPACE)
    run = _run(tmp_path, "nan", cache_dir, epochs=1, repeats=1)
    # Rebuild the run's tuner from its project and propose trial 1's values again.
    tuner_dir = run.tuner
    trial_json = json.loads(next(tuner_dir.glob("trial_*/trial.json")).read_text())
    values = trial_json["hyperparameters"]["values"]
    hp = keras_tuner.HyperParameters()
    hp.Choice("head_lr", [1e38, 1e-3])
    tuner = BenchTuner.__new__(BenchTuner)
    tuner.finished = {}
    tuner.results = {}
    tuner.trial_extras = {}
    first = keras_tuner.engine.trial.Trial(hp.copy(), trial_id="1")
    first.hyperparameters.values = dict(values)
    tuner.finished[tuner._configuration(first.hyperparameters)] = "1"
    tuner.results["1"] = [{"val_accuracy": 0.5}]
    again = keras_tuner.engine.trial.Trial(hp.copy(), trial_id="2")
    again.hyperparameters.values = dict(values)
    assert tuner.run_trial(again) == [{"val_accuracy": 0.5}]
    assert tuner.trial_extras["2"]["duplicate_of"] == "1"
    assert "same configuration as trial 1" in tuner.trial_error(again)
    assert np.isfinite(tuner.trial_extras["2"]["seconds"])


def test_a_figure_skipped_because_trials_failed_says_so_not_that_nothing_varied(tmp_path,
                                                                                 cache_dir):
    # head_lr is varied, but every trial at its second value diverges: the heatmap has one
    # learning rate left, and the report must not claim head_lr was never varied.
    _spaces(tmp_path, halfnan='''
        from bench.space import SearchSpace, SpaceSettings


        class HalfNan(SearchSpace):
            description = "two depths x a sane and a diverging head learning rate"
            version = 1
            settings = SpaceSettings(init="random", epochs=1, repeats=1)

            def declare(self, hp, *, num_blocks):
                hp.Choice("frozen_blocks", [0, 2])
                hp.Choice("head_lr", [1e-3, 1e38])
    ''')
    run = _run(tmp_path, "halfnan", cache_dir)
    assert sorted(read_trials(run)["status"]) == ["COMPLETED"] * 2 + ["FAILED"] * 2
    report = (run.path / "report.md").read_text()
    assert ("Not drawn: head_lr was varied, but only one of its values has complete "
            "executions (the trials with the others failed).") in report
    assert "were not both varied" not in report


#: A hyperparameter declared in build_head for one trial only, which the pre-flight
#: check's build (the first values) does not reach.
LATER_SPACE = '''
        import keras
        from bench.space import SearchSpace, SpaceSettings


        class Later(SearchSpace):
            description = "a hyperparameter declared in build_head for one trial only"
            version = 1
            settings = SpaceSettings(init="random", epochs=1, repeats=1)

            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [0.01, 0.001])

            def build_head(self, features, *, num_classes, hp):
                x = keras.layers.GlobalAveragePooling2D()(features)
                if hp.get("head_lr") < 0.005:
                    x = keras.layers.Dense(hp.Choice("width", [8, 64]))(x)
                return keras.layers.Dense(num_classes, activation="softmax")(x)
'''
LATER_ERROR = ("error: a hook of the search space declared hyperparameter 'width' "
               "(hp.Choice) in a trial; the tuner searches only what declare() declares: "
               "move hp.Choice('width', ...) into declare() and read it in the hook with "
               "hp.get('width'), then start a new run")


def test_a_hyperparameter_a_hook_declares_in_a_later_trial_is_one_line_and_exit_2(
        tmp_path, cache_dir):
    # The pre-flight check's build (the first values) does not declare it; KerasTuner's
    # oracle refuses it as the trial ends, which was a RuntimeError and a traceback.
    spaces = _spaces(tmp_path, later=LATER_SPACE)
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(cache_dir))
    result = run_bench("run", "--space", "later", "--spaces-dir", str(spaces),
                       "--image-size", str(IMAGE_SIZE), "--train-per-class", "10",
                       "--pretrain-epochs", "2", "--results-dir", str(tmp_path / "results"),
                       "--name", "later", env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [LATER_ERROR]
    run = RunDir(tmp_path / "results" / "later")
    assert read_run(run)["status"] == "failed"
    trials = read_trials(run)
    assert list(trials["status"][trials["head_lr"] == 0.01]) == ["COMPLETED"]


@pytest.mark.parametrize("trained, said", [
    (3, "Epochs trained: up to 3 per execution, more than the 2 epochs set: the space's "
        "fit() trains beyond run.epochs, and the tables and figures hold every epoch it "
        "trained"),
    (1, "Epochs trained: at most 1 per execution of the 2 epochs set: the space's fit() "
        "(or its early stopping) ended every execution sooner"),
])
def test_the_report_says_when_a_fit_hook_trains_other_epochs_than_set(
        tmp_path, cache_dir, trained, said):
    # Found by a new user: "What ran" said 2 epochs and the headline was at epoch 3.
    _spaces(tmp_path, otherepochs=f'''
        from bench.space import SearchSpace, SpaceSettings


        class OtherEpochs(SearchSpace):
            description = "a fit that trains {trained} epochs where 2 are set"
            version = 1
            settings = SpaceSettings(init="random", epochs=2, repeats=1)

            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [1e-3])

            def fit(self, parts, *, hp, run):
                return [run.fit(parts.model, epochs={trained})]
    ''')
    run = _run(tmp_path, "otherepochs", cache_dir)
    assert read_epochs(run)["epoch"].max() == trained
    report = (run.path / "report.md").read_text()
    assert f"- {said}" in report.splitlines()


@pytest.mark.slow
def test_a_hyperparameter_a_hook_declares_in_a_later_trial_under_workers_stops_the_study(
        tmp_path, cache_dir):
    # On the chief the refusal came inside gRPC's handler: the worker said it had lost
    # the chief, and the study failed as if a worker had died.
    _spaces(tmp_path, later=LATER_SPACE)
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(cache_dir))
    result = run_bench("run", "--space", "later", "--spaces-dir", str(tmp_path / "spaces"),
                       "--image-size", str(IMAGE_SIZE), "--train-per-class", "10",
                       "--pretrain-epochs", "2", "--results-dir", str(tmp_path / "results"),
                       "--name", "later", "--workers", "1", env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [LATER_ERROR]
    assert read_run(RunDir(tmp_path / "results" / "later"))["status"] == "failed"


def _formatted(error: BaseException) -> str:
    """``error`` raised and formatted as KerasTuner keeps a failed trial's message."""
    import traceback

    try:
        raise error
    except BaseException:
        return traceback.format_exc()


def test_a_failed_trials_reason_is_the_line_that_says_why_not_the_traceback_s_last():
    # Found by a new user: a head hook whose Reshape could not fit its input failed its
    # trial with the reason "• kwargs=<class 'inspect._empty'>", the last line of Keras's
    # message (the layer's arguments). Real Keras raises it here.
    import keras_tuner

    from bench.tuning.bench_tuner import error_line

    with pytest.raises(ValueError) as raised:
        keras.layers.Reshape((7, -1))(keras.Input((128,)))
    reshape = _formatted(raised.value)
    assert "kwargs=" in reshape.strip().splitlines()[-1]  # what the report used to show
    line = error_line(reshape)
    assert line.startswith("ValueError: Exception encountered when calling Reshape.call(). "
                           "The total size of the tensor must be unchanged"), line
    assert "\x1b" not in line and "\n" not in line
    # One-line errors, KerasTuner's FailedTrialError (the suite's NaN message) and a
    # chained error (the last exception is the one that failed the trial).
    assert error_line(_formatted(ValueError("bad value"))) == "ValueError: bad value"
    assert error_line(_formatted(keras_tuner.errors.FailedTrialError(
        "val_loss became nan at epoch 1 of repeat 1"))) == \
        "val_loss became nan at epoch 1 of repeat 1"
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as outer:
        assert error_line(_formatted(outer)) == "RuntimeError: outer"
    assert error_line("") == ""


def test_a_tensorflow_graph_error_s_reason_is_its_message_not_its_node():
    # TensorFlow's graph errors end with the node ("[[{{node GatherV2}}]]"); the reason is
    # the line after the trace of where the node was defined. Real TensorFlow raises it.
    tf = pytest.importorskip("tensorflow")

    from bench.tuning.bench_tuner import error_line

    @tf.function
    def gather(values):
        return tf.gather(values, tf.constant([10]))

    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        gather(tf.zeros(5))
    assert error_line(_formatted(raised.value)) == (
        "InvalidArgumentError: Graph execution error: indices[0] = 10 is not in [0, 5)")


def test_a_failed_trial_is_in_no_fast_path_count(tmp_path, cache_dir):
    # Both trials train on the prefix cache's features and are validated in batches of
    # 512; the NaN one fails in its first repeat's first epoch, so the counts are the
    # good trial's two repeats, as the report's numbers are.
    _spaces(tmp_path, frozennan='''
        from bench.space import SearchSpace, SpaceSettings


        class FrozenNan(SearchSpace):
            description = "a frozen prefix, a sane head learning rate and a NaN one"
            version = 1
            settings = SpaceSettings(init="random", frozen_blocks=2, epochs=1, repeats=2)

            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [1e38, 1e-3])
    ''')
    run = _run(tmp_path, "frozennan", cache_dir, train_per_class=20)
    statuses = read_trials(run).set_index("head_lr")["status"]
    assert statuses[1e38] == "FAILED" and statuses[1e-3] == "COMPLETED"
    record = read_run(run)
    assert record["prefix_cache"]["executions"] == 2
    assert record["evaluation"] == {"larger_batches": 2, "larger_tests_only": 0}


def test_a_trial_failing_in_its_second_repeat_is_in_no_evaluation_count(tmp_path,
                                                                         cache_dir):
    # The first repeat of the 2e-3 trial is validated and tested in batches of 512
    # before its second raises: counted, the count would be 3.
    _spaces(tmp_path, secondfails='''
        from bench.space import SearchSpace, SpaceSettings
        from bench.tuning.bench_tuner import repeat_seeds


        class SecondFails(SearchSpace):
            description = "the second repeat of one trial raises after training"
            version = 1
            settings = SpaceSettings(init="random", frozen_blocks=0, epochs=1, repeats=2)

            def declare(self, hp, *, num_blocks):
                hp.Choice("head_lr", [1e-3, 2e-3])

            def fit(self, parts, *, hp, run):
                history = run.fit(parts.model, epochs=1)
                if hp.get("head_lr") == 2e-3 and run.seed == repeat_seeds(1, 2)[1]:
                    raise RuntimeError("broken on purpose in the second repeat")
                return [history]
    ''')
    run = _run(tmp_path, "secondfails", cache_dir, train_per_class=20)
    trials = read_trials(run).set_index("head_lr")
    assert trials.loc[2e-3, "status"] == "FAILED" and trials.loc[1e-3, "status"] == "COMPLETED"
    assert trials.loc[2e-3, "epochs_completed"] == 2  # one in each repeat
    # Found by a new user: the reason named no repeat, as a NaN's does.
    assert trials.loc[2e-3, "error"] == ("RuntimeError: broken on purpose in the second "
                                         "repeat (in repeat 2)")
    assert read_run(run)["evaluation"] == {"larger_batches": 2, "larger_tests_only": 0}
