"""The torch backend, where it is installed (not in CI: PyPI's torch wheel for Linux
brings CUDA's libraries; the GPU machines and a CPU wheel have it).

Keras's torch backend differs from the other two where the suite relies on backend
behaviour: its ``fit`` shuffles with torch's global generator, and it clears gradients
through the parameters a model tracks by variable path. Both once changed numbers here
(a reused model or a cached prefix trained in another batch order; repeats trained
together added up one member's gradients), so the backend-generic unit tests and the
fast paths run again under torch.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import IMAGE_SIZE
from test_cli import run_bench

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed")]

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["loss", "accuracy", "val_loss", "val_accuracy"]

#: Tests written for any backend that read the backend's own behaviour.
GENERIC = ["tests/test_probe.py",
           "tests/test_fast_paths.py::test_training_batches_come_in_the_seeds_order_in_one_pipeline",
           "tests/test_fast_paths.py::test_short_epochs_run_through_the_seeds_passes_whatever"
           "_the_random_state",
           "tests/test_fast_paths.py::test_one_batch_evaluation_equals_evaluate"]

STACKED = '''
from bench.space import SearchSpace, SpaceSettings


class Stacked(SearchSpace):
    description = "whole model and a cached prefix, both inits, the default head"
    version = 1
    settings = SpaceSettings(epochs=2, repeats=2, head_lr=1e-2)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        hp.Choice("frozen_blocks", [0, 2])
'''

HOOKED = '''
import keras

from bench.space import SearchSpace, SpaceSettings


class Hooked(SearchSpace):
    description = "a head of its own: reuse probes it"
    version = 1
    settings = SpaceSettings(epochs=2, repeats=2, frozen_blocks=2)

    def declare(self, hp, *, num_blocks):
        hp.Choice("init", ["pretrained", "random"])
        hp.Choice("head_lr", [1e-2, 3e-3])

    def build_head(self, features, *, num_classes, hp):
        x = keras.layers.GlobalAveragePooling2D()(features)
        x = keras.layers.Dense(16, activation="relu")(x)
        return keras.layers.Dense(num_classes, activation="softmax")(x)
'''


def _torch_env(tmp_path) -> dict:
    return dict(os.environ, KERAS_BACKEND="torch", FINETUNE_BENCH_CACHE=str(tmp_path / "cache"))


def test_the_backend_generic_unit_tests_pass_on_torch(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p",
                             "no:cacheprovider", *GENERIC], cwd=ROOT, env=_torch_env(tmp_path),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]


def _used(record: dict) -> dict:
    return {"reused": record["models"]["reused"],
            "prefix": (record.get("prefix_cache") or {}).get("executions", 0),
            "together": (record.get("together") or {}).get("trials", 0)}


@pytest.mark.parametrize("space, source, fast", [
    # 4 trials x 2 repeats: 8 executions, 4 of them at frozen depth 2 (all 8 in hooked).
    ("stacked", STACKED, {"--train-together": {"reused": 0, "prefix": 4, "together": 4},
                          "": {"reused": 7, "prefix": 4, "together": 0}}),
    ("hooked", HOOKED, {"": {"reused": 8, "prefix": 8, "together": 0}}),
])
def test_the_fast_paths_change_no_number_on_torch(tmp_path, space, source, fast):
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / f"{space}.py").write_text(source)
    tables = {}
    options = ["--no-reuse --no-prefix-cache", *fast]
    for i, extra in enumerate(option.split() for option in options):
        result = run_bench("run", "--space", space, "--spaces-dir", str(spaces),
                           "--image-size", str(IMAGE_SIZE), "--pretrain-epochs", "2",
                           "--train-per-class", "10", "--results-dir", str(tmp_path),
                           "--name", f"run{i}", *extra, env=_torch_env(tmp_path))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        tables[i] = (pd.read_csv(tmp_path / f"run{i}" / "epochs.csv"),
                     pd.read_csv(tmp_path / f"run{i}" / "trials.csv"))
    plain_epochs, plain_trials = tables.pop(0)
    assert len(plain_epochs) == 4 * 2 * 2
    for i, option in enumerate(options[1:], start=1):
        record = json.loads((tmp_path / f"run{i}" / "run.json").read_text())
        assert record["backend"] == "torch" and _used(record) == fast[option], option
    for epochs, trials in tables.values():
        pd.testing.assert_frame_equal(epochs[METRICS], plain_epochs[METRICS],
                                      check_exact=False, rtol=0, atol=1e-5)
        pd.testing.assert_series_equal(trials["test_accuracy"], plain_trials["test_accuracy"],
                                       check_exact=False, rtol=0, atol=1e-5)
