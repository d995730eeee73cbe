"""`run_bench.py perf` runs one study as plain KerasTuner and as the suite and says how they
compare. Only the structure and the arithmetic are asserted, never a speed."""

import json
import os

import pytest
from test_cli import run_bench


@pytest.mark.slow
def test_perf_writes_both_sides_and_the_speedup(tmp_path):
    env = dict(os.environ, FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    result = run_bench("perf", "--image-size", "16", "--epochs", "1", "--repeats", "2",
                       "--max-trials", "2", "--pretrain-epochs", "2", "--results-dir",
                       str(tmp_path), "--name", "p", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    perf = json.loads((tmp_path / "p" / "perf.json").read_text())
    plain, suite = perf["plain_kerastuner"], perf["suite"]
    assert perf["speedup"] == pytest.approx(plain["search_seconds"] / suite["search_seconds"],
                                            rel=1e-2)
    for side in (plain, suite):
        # 2 trials x 2 repeats of 1 epoch over the 100 digits training images.
        assert side["executions"] == 4 and side["train_images_seen"] == 400
        assert 0.0 <= side["best_val_accuracy"] <= 1.0
        assert side["images_per_second"] == pytest.approx(400 / side["search_seconds"], rel=1e-2)
    assert perf["floor_seconds"] > 0 and perf["suite_over_floor"] > 1
    assert perf["backend"] == "tensorflow" and perf["study"]["space"] == "seed"
    assert "speedup (a)/(b)" in result.stdout


def test_perf_refuses_a_space_with_its_own_fit(tmp_path):
    result = run_bench("perf", "--space", "two-phase", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "overrides fit()" in result.stderr
    assert not any(tmp_path.iterdir())


def test_forward_macs_counts_convolutions_and_dense_layers_by_hand():
    import keras

    from bench.perf import forward_macs

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 outputs x 3*3*3 x 4
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 4*4*4 x 3*3
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)  # 4 x 2
    model = keras.Model(inputs, outputs)
    assert forward_macs(model) == 8 * 8 * 27 * 4 + 4 * 4 * 4 * 9 + 4 * 2
