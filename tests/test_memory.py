"""The memory recorded per trial is the process's resident set, read a second way."""

import os
import subprocess

import numpy as np
import pytest

from bench.tuning.memory import device_mib, resident_mib


def test_resident_memory_matches_what_ps_reports():
    try:
        ps = subprocess.run(["ps", "-o", "rss=", "-p", str(os.getpid())], capture_output=True,
                            text=True, timeout=30, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("ps is not available here")
    by_ps = int(ps.stdout.strip()) / 1024
    # Both read the same counter a few microseconds apart; allocations in between are small.
    assert resident_mib() == pytest.approx(by_ps, rel=0.02)


def test_a_run_records_memory_after_every_trial(tiny_run):
    import pandas as pd

    trials = pd.read_csv(tiny_run / "trials.csv")
    assert (trials["rss_mib"] > 100).all()  # a process with Keras loaded holds far more


def test_device_memory_is_recorded_on_an_accelerator_and_empty_on_a_cpu(tiny_run):
    import pandas as pd

    from bench.device import describe_device

    trials = pd.read_csv(tiny_run / "trials.csv")
    if not describe_device()["accelerators"]:
        assert trials["device_mib"].isna().all() and np.isnan(device_mib())
        return
    # On an accelerator: a known allocation shows in the count.
    import keras

    before = device_mib()
    block = keras.ops.ones((64, 2**18), dtype="float32")  # 64 MiB
    assert device_mib() - before >= 63
    del block
    assert (trials["device_mib"] > 0).all()


def test_taking_a_kept_state_leaves_no_memory_behind(tmp_path):
    """On TensorFlow every Keras variable created and dropped leaves memory behind, so an
    execution that takes a kept state must not build a new optimizer's variables: 30 such
    executions grew RSS 2.7 MiB each when it did (resnet-mini's Adam slots), and about
    0.1 MiB each since."""
    import keras

    from bench.plan import RunSpec, plan_study
    from bench.runner import prepare_inputs
    from bench.tuning.hypermodel import FineTuneHyperModel, ModelInputs
    from bench.tuning.reuse import CompiledModels

    plan = plan_study(RunSpec(space="head-lr", init="random", results_dir=tmp_path,
                              cache_dir=tmp_path / "cache"))
    data, weights, _ = prepare_inputs(plan.spec, settings=plan.settings,
                                      backbone=plan.backbone, hp=plan.hp,
                                      image_size=plan.image_size, log=lambda *a: None)
    models = CompiledModels(FineTuneHyperModel(plan.space, ModelInputs(
        backbone=plan.backbone, image_size=plan.image_size,
        num_classes=len(data.class_names), num_blocks=plan.num_blocks,
        pretrained_weights=weights)))
    hp = plan.hp.copy()
    hp.values["frozen_blocks"] = 0
    rss = []
    for execution in range(40):
        hp.values["head_lr"] = [1e-4, 1e-3, 1e-2, 1e-1][execution % 4]
        models.prepare(hp, seed=1)
        rss.append(resident_mib())
    assert models.states_reused == 39
    if keras.backend.backend() == "tensorflow":
        assert (rss[-1] - rss[9]) / 30 < 1.0, rss
