"""Every KerasTuner tuner runs a short search on tiny data and records its rows."""

import pytest
from conftest import IMAGE_SIZE

from bench.results import RunDir, read_epochs, read_run, read_trials
from bench.runner import RunSpec, run_study


@pytest.mark.parametrize("tuner", ["grid", "random", "bayesian", "hyperband"])
def test_each_tuner_runs_a_two_trial_search(tuner, tmp_path, cache_dir):
    spec = RunSpec(space="seed", tuner=tuner, max_trials=2, max_epochs=2, epochs=1,
                   repeats=1, image_size=IMAGE_SIZE, pretrain_epochs=1,
                   results_dir=tmp_path, name=tuner, cache_dir=cache_dir)
    run_dir = RunDir(run_study(spec, log=lambda *_: None))
    run = read_run(run_dir)
    trials = read_trials(run_dir)
    epochs = read_epochs(run_dir)
    assert run["tuner"] == tuner and run["status"] == "completed"
    assert (trials["status"] == "COMPLETED").all()
    if tuner == "hyperband":
        assert len(trials) >= 2
        # Hyperband schedules epochs per trial, up to --max-epochs.
        assert set(epochs.groupby("trial_id")["epoch"].max()) <= {1, 2}
    else:
        assert len(trials) == 2
        assert len(epochs) == 2
    # Distinct trials get distinct configurations.
    configs = trials[["init", "frozen_blocks", "head_lr"]].astype(str).agg("/".join, axis=1)
    assert configs.nunique() == len(trials) or tuner == "hyperband"
