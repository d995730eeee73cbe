"""Every KerasTuner tuner runs a short search on tiny data and records its rows."""

import pytest
from conftest import IMAGE_SIZE

from bench.plan import RunSpec
from bench.results import RunDir, read_epochs, read_run, read_trials
from bench.runner import run_study


@pytest.mark.parametrize("tuner", ["grid", "random", "bayesian", "hyperband"])
def test_each_tuner_runs_a_two_trial_search(tuner, tmp_path, cache_dir):
    # Hyperband is bounded by its brackets (--max-trials is refused for it); the others
    # by --max-trials (--max-epochs is Hyperband's alone).
    # --epochs beside --max-epochs is refused: Hyperband would ignore it.
    bound = {"max_epochs": 3} if tuner == "hyperband" else {"max_trials": 2, "epochs": 1}
    spec = RunSpec(space="seed", tuner=tuner, repeats=1, image_size=IMAGE_SIZE,
                   pretrain_epochs=1, results_dir=tmp_path, name=tuner, cache_dir=cache_dir,
                   **bound)
    said = []
    run_dir = RunDir(run_study(spec, log=said.append))
    run = read_run(run_dir)
    trials = read_trials(run_dir)
    epochs = read_epochs(run_dir)
    assert run["tuner"] == tuner and run["status"] == "completed"
    assert (trials["status"] == "COMPLETED").all()
    if tuner == "hyperband":
        # KerasTuner's Hyperband at --max-epochs 3, factor 3: a bracket of 3 trials of 1
        # epoch whose best is trained again for 3, and a bracket of 2 trials of 3 epochs.
        lengths = epochs.groupby("trial_id")["epoch"].max()
        assert sorted(lengths) == [1, 1, 1, 3, 3, 3]
        _promotion_counts_once(run_dir, epochs)
        # The console and report say the schedule, not the space's 8 epochs.
        assert "searching: 6 trials in Hyperband's brackets x 1 repeat x up to 3 epochs " \
            "per trial" in said
        assert "; up to 3 epochs per trial (Hyperband's schedule), 1 repeat per" in \
            (run_dir.path / "report.md").read_text()
    else:
        assert len(trials) == 2
        assert len(epochs) == 2
    # Distinct trials get distinct configurations.
    configs = trials[["init", "frozen_blocks", "head_lr"]].astype(str).agg("/".join, axis=1)
    assert configs.nunique() == len(trials) or tuner == "hyperband"


def _promotion_counts_once(run_dir, epochs):
    """The promoted configuration ran twice with the same seed: its first epoch is the
    same in both, and the analysis counts the execution once, as the longer trial."""
    from bench.analysis.tables import load_tables

    values = ["init", "frozen_blocks", "head_lr"]
    first = epochs[epochs["epoch"] == 1]
    again = first[first.duplicated(values + ["seed"], keep=False)].sort_values("trial_id")
    assert len(again) == 2  # the promotion: one short trial, one long
    short, long = again["trial_id"]
    assert epochs[epochs["trial_id"] == short]["epoch"].max() == 1
    metrics = ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert again[metrics].iloc[0].to_numpy() == pytest.approx(again[metrics].iloc[1].to_numpy(),
                                                              abs=1e-6)
    tables = load_tables([run_dir.path])
    assert list(tables.superseded[["trial_id", "epochs", "by_trial_id", "by_epochs"]]
                .itertuples(index=False, name=None)) == [(short, 1, long, 3)]
    assert set(tables.complete["trial_id"]) == set(epochs["trial_id"]) - {short}
    assert not tables.complete.duplicated(values + ["seed", "epoch"]).any()
    report = (run_dir.path / "report.md").read_text()
    assert f"trial {short} (seed 1, 1 epoch): counted as trial {long} (3 epochs)" in report


def test_hyperbands_shortest_trial_is_kerastuners():
    # A space that needs two epochs per trial is refused only where Hyperband would give
    # fewer: the count is checked against KerasTuner's own schedule.
    import keras_tuner

    from bench.tuning.algorithms import HYPERBAND_FACTOR, hyperband_shortest_trial

    for max_epochs in range(1, 60):
        oracle = keras_tuner.oracles.HyperbandOracle(max_epochs=max_epochs,
                                                     factor=HYPERBAND_FACTOR)
        brackets = oracle._get_num_brackets()
        assert hyperband_shortest_trial(max_epochs) == oracle._get_epochs(brackets - 1, 0)


def test_a_search_that_stops_early_says_why_and_suggests_a_grid_only_to_other_tuners():
    import keras_tuner

    from bench.tuning.algorithms import stop_reason

    finite = keras_tuner.HyperParameters()
    finite.Choice("head_lr", [1e-3, 1e-2])
    finite.Choice("frozen_blocks", [0, 2])
    assert stop_reason("grid", finite, trials_run=4, max_trials=None) is None
    assert stop_reason("random", finite, trials_run=4, max_trials=10) == (
        "the search stopped after 4 of 10 trials: the space has only 4 combinations and "
        "all have run")
    # Found by a new user: a grid that stopped early was told to use --tuner grid.
    grid = stop_reason("grid", finite, trials_run=2, max_trials=None)
    assert grid == ("the search stopped after 2 of 4 trials: KerasTuner's grid oracle found "
                    "no combination left to run")
    # A sampling oracle gives up after 20 repeated samples of a nearly exhausted space.
    assert "a grid (--tuner grid) would cover it exactly" in stop_reason(
        "random", finite, trials_run=3, max_trials=10)
    # Found in review: never a grid for a continuous space; Hyperband's own reasons.
    continuous = keras_tuner.HyperParameters()
    continuous.Float("head_lr", 1e-4, 1e-1, sampling="log")
    assert stop_reason("random", continuous, trials_run=3, max_trials=10) == (
        "the search stopped after 3 of 10 trials: KerasTuner's oracle found no untried "
        "combination (it gives up after 20 repeated samples)")
    assert stop_reason("hyperband", continuous, trials_run=17, max_trials=None,
                       max_epochs=9, failed=8) == (
        "the search stopped after 17 of 23 trials: 8 of them failed, and Hyperband promotes "
        "only completed trials to its longer rounds")
    assert stop_reason("hyperband", finite, trials_run=4, max_trials=None, max_epochs=9) == (
        "the search stopped after 4 of 23 trials: KerasTuner's Hyperband ends the search "
        "when a bracket's first round finds no untried combination (the space has 4)")
    # KerasTuner's limit on failures in a row: a grid's count is exact; random search
    # runs no more than the untried combinations (found in review: "7 never ran" of 4).
    limit = "KerasTuner's limit on trials failing in a row ended it, so"
    assert stop_reason("grid", finite, trials_run=3, max_trials=None, failure_limit=True) == (
        f"the search stopped after 3 of 4 trials: {limit} 1 planned trial never ran")
    assert stop_reason("random", finite, trials_run=3, max_trials=10, failure_limit=True) == (
        f"the search stopped after 3 of 10 trials: {limit} up to 1 planned trial never ran")
    assert stop_reason("random", finite, trials_run=4, max_trials=10,
                       failure_limit=True).endswith("the space has only 4 combinations and "
                                                    "all have run")
    assert stop_reason("random", continuous, trials_run=3, max_trials=10,
                       failure_limit=True).endswith(f"{limit} up to 7 planned trials never ran")
    assert stop_reason("hyperband", finite, trials_run=3, max_trials=None, max_epochs=9,
                       failure_limit=True).endswith(f"{limit} up to 20 planned trials never ran")
    # Bayesian proposals may repeat a combination (run as DUPLICATE): not capped by it.
    assert stop_reason("bayesian", finite, trials_run=5, max_trials=10,
                       failure_limit=True).endswith(f"{limit} up to 5 planned trials never ran")


def test_the_failure_limit_stops_only_a_search_with_trials_left_to_start():
    import keras_tuner
    from keras_tuner.src.engine.trial import Trial

    from bench.tuning.algorithms import nothing_left_to_run
    from bench.tuning.bench_tuner import at_failure_limit

    finite = keras_tuner.HyperParameters()
    finite.Choice("head_lr", [1e-3, 1e-2, 1e-1, 1.0])
    continuous = keras_tuner.HyperParameters()
    continuous.Float("head_lr", 1e-4, 1e-1, sampling="log")

    def trials(*statuses):
        return [Trial(finite, trial_id=str(i), status=s) for i, s in enumerate(statuses)]

    four = trials("COMPLETED", "FAILED", "FAILED", "FAILED")
    # A grid and a random search over 4 combinations have nothing left after 4 trials
    # (random search draws only untried ones); a continuous space always has more.
    assert nothing_left_to_run("grid", finite, four, planned=4)
    assert nothing_left_to_run("random", finite, four, planned=10)
    assert not nothing_left_to_run("random", continuous, four, planned=10)
    assert not nothing_left_to_run("random", finite, four[:3], planned=10)
    # Bayesian search proposes until --max-trials (a repeat runs as DUPLICATE).
    assert not nothing_left_to_run("bayesian", finite, four, planned=10)

    assert at_failure_limit(four, nothing_left=True) == "end"
    assert at_failure_limit(four, nothing_left=False) == "stop"
    # Nothing to start, but a worker still runs a trial: decided when it ends.
    assert at_failure_limit(trials("RUNNING", "FAILED", "FAILED", "FAILED"),
                            nothing_left=True) == "wait"
    # Failures alone: the study fails, whatever was left.
    assert at_failure_limit(trials("FAILED", "FAILED", "FAILED"), nothing_left=True) == "stop"


def test_kerastuner_checks_its_failure_limit_again_at_every_later_trial_end(tmp_path):
    # The chief's "wait" relies on it: the trial still running when the third failure
    # ended reaches the limit again when it ends, and is decided then.
    import keras_tuner

    from bench.tuning.distributed import end_trial

    hp = keras_tuner.HyperParameters()
    hp.Choice("head_lr", [1e-3, 1e-2, 1e-1, 1.0])
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("score", "max"), hyperparameters=hp, max_trials=10,
        seed=1)
    oracle._set_project_dir(str(tmp_path), "oracle")  # noqa: SLF001
    running, *failing = [oracle.create_trial(f"worker{i}") for i in range(4)]
    reached = []
    for trial in failing:
        trial.status = "FAILED"
        reached.append(end_trial(oracle, trial))
    assert reached == [False, False, True]
    running.status = "COMPLETED"
    running.metrics.register("score", "max")
    running.metrics.update("score", 0.5)
    assert end_trial(oracle, running)
    assert oracle.trials[running.trial_id].status == "COMPLETED"


@pytest.mark.parametrize("max_epochs", [1, 2, 3, 4, 9, 10, 27, 30])
def test_hyperbands_trial_count_is_kerastuners(max_epochs, tmp_path):
    """The count the progress and the stop reason use, against KerasTuner's own oracle
    driven to its end (a new user's --max-epochs 1 ran one trial without a word)."""
    import keras_tuner
    import numpy as np

    from bench.tuning.algorithms import HYPERBAND_FACTOR, hyperband_trials

    hp = keras_tuner.HyperParameters()
    hp.Float("head_lr", 1e-4, 1e-1, sampling="log")  # never runs out of untried values
    oracle = keras_tuner.oracles.HyperbandOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"), max_epochs=max_epochs,
        factor=HYPERBAND_FACTOR, hyperparameters=hp, seed=1)
    oracle._set_project_dir(str(tmp_path), "hyperband")
    scores = np.random.default_rng(max_epochs)
    trials = 0
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        trials += 1
        oracle.update_trial(trial.trial_id, {"val_accuracy": float(scores.random())})
        trial.status = "COMPLETED"  # as KerasTuner's tuner marks it before ending it
        oracle.end_trial(trial)
    assert hyperband_trials(max_epochs) == trials


def test_the_readme_s_hyperband_trial_counts_are_the_schedule_s():
    import re

    from conftest import ROOT

    from bench.tuning.algorithms import hyperband_trials

    text = " ".join((ROOT / "README.md").read_text().split())
    said = re.search(r"the start line says it: 1 at `--max-epochs 1`, (\d+) at (\d+), "
                     r"(\d+) at (\d+), (\d+) at (\d+)", text)
    assert said, "the README's sentence on Hyperband's trial counts moved"
    pairs = [(1, 1)] + [(int(said[i]), int(said[i + 1])) for i in (1, 3, 5)]
    assert [(hyperband_trials(epochs), epochs) for _, epochs in pairs] == pairs


def test_the_grid_hands_an_int_sampled_log_with_a_step_as_ints(tmp_path):
    # Found by a new user: KerasTuner's grid lists Int("units", 8, 64, sampling="log",
    # step=2) as 8.0, 16.0, 32.0, 64.0, and Dense refused 16.0: every trial after the first
    # (whose default, 8, is an int) failed.
    import keras_tuner

    from bench.tuning.algorithms import make_oracle

    hp = keras_tuner.HyperParameters()
    hp.Int("units", 8, 64, sampling="log", step=2)
    hp.Choice("init", ["pretrained", "random"])
    assert [type(v) for v in hp.space[0].values] == [float] * 4  # KerasTuner's own
    oracle = make_oracle("grid", hyperparameters=hp, max_trials=None, seed=1, max_epochs=1)
    oracle._set_project_dir(str(tmp_path), "tuner")
    handed = []
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        handed.append(dict(trial.hyperparameters.values))
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        oracle.end_trial(trial)
    assert sorted((v["units"], v["init"]) for v in handed) == [
        (units, init) for units in (8, 16, 32, 64) for init in ("pretrained", "random")]
    assert {type(v["units"]) for v in handed} == {int}


def test_a_trial_handed_out_with_float_ints_trains_with_ints(tmp_path, cache_dir,
                                                              monkeypatch):
    # Found by a reviewer: a run started before the grid handed out ints, resumed, gets its
    # running trial back from oracle.json with KerasTuner's floats. The oracle's cast is
    # taken away here, so every trial arrives as such a one would.
    import textwrap

    from bench.tuning import algorithms, bench_tuner

    # The tuner's own cast, bound before the oracle's is taken away.
    assert bench_tuner.ints_as_int is algorithms.ints_as_int
    monkeypatch.setattr(algorithms, "ints_as_int", lambda hp, values: values)
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "units.py").write_text(textwrap.dedent('''
        import keras

        from bench.space import SearchSpace, SpaceSettings


        class Units(SearchSpace):
            description = "a hidden layer's width, log-stepped"
            settings = SpaceSettings(init="random", epochs=1, repeats=1, frozen_blocks=4)
            extra_hyperparameters = ("units",)

            def declare(self, hp, *, num_blocks):
                hp.Int("units", 4, 8, sampling="log", step=2)

            def build_head(self, x, *, hp, num_classes):
                x = keras.layers.GlobalAveragePooling2D()(x)
                x = keras.layers.Dense(self.value(hp, "units"), activation="relu")(x)
                return keras.layers.Dense(num_classes, activation="softmax")(x)
    '''))
    spec = RunSpec(space="units", spaces_dir=tmp_path / "spaces", image_size=IMAGE_SIZE,
                   results_dir=tmp_path, name="units", cache_dir=cache_dir)
    run_dir = RunDir(run_study(spec, log=lambda *_: None))
    trials = read_trials(run_dir)
    assert list(trials["status"]) == ["COMPLETED", "COMPLETED"], trials["error"].tolist()
    assert sorted(trials["units"].astype(str)) == ["4", "8"]


def test_the_chief_names_the_trial_that_first_reached_the_failure_limit(tmp_path):
    # A trial still running on another worker when the limit was reached may fail too;
    # KerasTuner then reports the limit again, but the study stopped at the first.
    import keras_tuner

    from bench.tuning.distributed import _chief_servicer

    hp = keras_tuner.HyperParameters()
    hp.Float("head_lr", 1e-4, 1e-1, sampling="log")
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("score", "max"), hyperparameters=hp, max_trials=10,
        seed=1)
    oracle._set_project_dir(str(tmp_path), "oracle")  # noqa: SLF001
    servicer = _chief_servicer(oracle, fingerprint="f", described="d",
                               failure_limit=lambda: f"stopped after {len(oracle.end_order)}")
    named = []
    for trial in [oracle.create_trial(f"worker{i}") for i in range(4)]:
        trial.status = "FAILED"
        servicer.end(trial)
        named.append(servicer.failure)
    assert named == [None, None, "stopped after 3", "stopped after 3"]
