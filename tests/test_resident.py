"""Training data kept on the device (JAX) changes no number: the batches are the seed's
rows, and training on them equals training on the host's copies, bit for bit."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT
from test_cli import run_bench

from bench.data.datasets import Split
from bench.tuning.evaluation import OneBatch

BATCHES_AND_TRAINING = r'''
import keras, numpy as np
from bench.data.datasets import Split
from bench.models.model import FineTuneModel
from bench.tuning.batches import resident_fit_arguments
from bench.tuning.bench_tuner import FitRun
from bench.tuning.recording import EpochRecorder
from bench.tuning.resident import OnDevice, device_data_wanted

assert device_data_wanted()
rng = np.random.default_rng(5)
train = Split(rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8), rng.integers(0, 4, 37))
validation = Split(rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), rng.integers(0, 4, 20))
seed = 11

# Every batch is the seed's rows: epoch e's order drawn by hand, in batches of 8 (the last 5).
arguments = resident_fit_arguments(OnDevice.of(train), seed=seed, batch_size=8, epochs=3,
                                   initial_epoch=1)
batches = arguments["x"]
assert arguments["steps_per_epoch"] == 5 and len(batches) == 10
for index in range(10):
    epoch, b = divmod(index, 5)
    order = np.random.RandomState((seed * 100_003 + epoch + 1) % 2**32).permutation(37)
    rows = order[b * 8:(b + 1) * 8]
    images, labels = batches[index]
    assert isinstance(images, type(OnDevice.of(train).images))
    assert np.array_equal(np.asarray(images), train.images[rows])
    assert np.array_equal(np.asarray(labels), train.labels[rows])

class Discard:
    def append(self, row):
        pass

def trained(on_device):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(4, "softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    parts = FineTuneModel(model=model, backbone=None, blocks=[], head_layers=[])
    run = FitRun(train=train, validation=validation, epochs=4, batch_size=8,
                 recorder=EpochRecorder(Discard(), fixed={}, parts=parts), seed=seed,
                 on_device=on_device)
    run.fit(model, epochs=2)
    run.fit(model, epochs=4, initial_epoch=2)  # a second phase counts on
    return run.recorder.rows, model.get_weights()

host_rows, host_weights = trained(None)
rows, weights = trained(OnDevice.of(train))
assert [r["loss"] for r in rows] == [r["loss"] for r in host_rows], (rows, host_rows)
assert [r["val_accuracy"] for r in rows] == [r["val_accuracy"] for r in host_rows]
assert all(np.array_equal(a, b) for a, b in zip(weights, host_weights))
# A copy of other data is never used: a run on `train` with it trains on `train`.
other = Split(train.images.copy(), train.labels.copy())
stale_rows, stale_weights = trained(OnDevice.of(other))
assert all(np.array_equal(a, b) for a, b in zip(stale_weights, host_weights))
# And the seed's order matters: another seed trains to other weights (the test can fail).
seed = 12
assert not np.allclose(trained(OnDevice.of(train))[1][0], host_weights[0], atol=1e-4)
print("same")
'''


def _jax(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND="jax")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=600)


def test_device_batches_are_the_seeds_rows_and_train_as_host_batches_do():
    pytest.importorskip("jax")
    result = _jax(BATCHES_AND_TRAINING)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "same"


def test_a_one_batch_copy_is_used_only_for_the_split_it_was_made_from():
    import numpy as np

    images, labels = np.zeros((3, 2, 2, 3), np.uint8), np.arange(3)
    split = Split(images, labels)
    batch = OneBatch.of(split)
    assert batch.holds(split) and batch.holds(Split(images, labels))
    assert not batch.holds(Split(images.copy(), labels))
    assert not OneBatch(images, labels).holds(split)  # made from arrays, not a split


EVERY_DEPTH_DEFAULT_HEAD = '''
from bench.space import SearchSpace, SpaceSettings


class Resident(SearchSpace):
    description = "every other cut point, both inits, the default head"
    version = 1
    settings = SpaceSettings(epochs=2, repeats=2, head_lr=3e-3)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        hp.Int("frozen_blocks", 0, num_blocks, step=2)
'''


@pytest.mark.slow
def test_a_jax_study_is_the_same_with_and_without_device_data(tmp_path):
    """Whole model (depth 0) and the prefix cache's features (depths 2 and 4) on the
    device, against --no-device-data: the same tables, bit for bit; and with the repeats
    trained together, the same within 1e-5."""
    pytest.importorskip("jax")
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "resident.py").write_text(EVERY_DEPTH_DEFAULT_HEAD)
    env = dict(os.environ, KERAS_BACKEND="jax", FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))
    runs = {}
    for name, extra in (("on", []), ("off", ["--no-device-data"]),
                        ("together", ["--train-together"])):
        result = run_bench("run", "--space", "resident", "--spaces-dir", str(spaces),
                           "--image-size", "16", "--pretrain-epochs", "2", "--results-dir",
                           str(tmp_path), "--name", name, *extra, env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        runs[name] = tmp_path / name
    records = {name: json.loads((path / "run.json").read_text()) for name, path in runs.items()}
    assert records["on"]["device_data"] is True and records["off"]["device_data"] is False
    assert records["on"]["prefix_cache"]["executions"] == 8  # 2 depths x 2 inits x 2 repeats
    on, off = (pd.read_csv(runs[name] / "epochs.csv").drop(columns=["run_id", "epoch_seconds"])
               for name in ("on", "off"))
    assert sorted(on["frozen_blocks"].unique()) == [0, 2, 4] and len(on) == 6 * 2 * 2
    pd.testing.assert_frame_equal(on, off, check_exact=True)
    pd.testing.assert_series_equal(pd.read_csv(runs["on"] / "trials.csv")["test_accuracy"],
                                   pd.read_csv(runs["off"] / "trials.csv")["test_accuracy"],
                                   check_exact=True)
    # Repeats trained together gather each member's batches from the features on the
    # device too: the numbers of training each alone (within the together path's 1e-5).
    assert records["together"]["together"] == {"trials": 6, "retried_alone": 0}
    assert records["together"]["device_data"] is True
    together = pd.read_csv(runs["together"] / "epochs.csv").drop(
        columns=["run_id", "epoch_seconds"])
    pd.testing.assert_frame_equal(together, off, check_exact=False, rtol=0, atol=1e-5)
