"""``set_seed`` leaves every seed as ``keras.utils.set_random_seed`` does, keeps TensorFlow's
compiled kernels, and changes no number of a study."""

import random

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import IMAGE_SIZE

from bench.tuning.seeding import set_seed


def _draws(shape_tag: int) -> dict:
    """One draw from every source an execution seeds. ``shape_tag`` gives TensorFlow's
    eager op a shape of its own, so that its kernel is new whichever way was seeded."""
    draws = {"python": random.random(), "numpy": np.random.rand(3),
             "keras": keras.ops.convert_to_numpy(keras.random.normal((3,)))}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        draws["tf eager"] = tf.random.uniform([shape_tag]).numpy()
        # A function traced now takes its operation seed from the global seed.
        draws["tf function"] = tf.function(lambda: tf.random.uniform([2]))().numpy()
    return draws


def test_set_seed_seeds_as_keras_does():
    set_seed(11)
    ours = _draws(5)
    keras.utils.set_random_seed(11)
    theirs = _draws(5)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    set_seed(12)
    assert random.random() != ours["python"]


def test_set_seed_keeps_tensorflows_kernels():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's kernel cache matters on its backend only")
    # A stateful kernel with a fixed op seed continues its sequence while it is cached;
    # clearing the cache starts it again.
    keras.utils.set_random_seed(5)
    first = tf.random.uniform([4], seed=1).numpy()
    set_seed(5)
    kept = tf.random.uniform([4], seed=1).numpy()
    keras.utils.set_random_seed(5)
    cleared = tf.random.uniform([4], seed=1).numpy()
    assert not np.array_equal(kept, first)
    np.testing.assert_array_equal(cleared, first)


def test_a_study_is_the_same_with_kerass_seeding(tmp_path, cache_dir, monkeypatch):
    """The kept-state path (the second head rate takes the first's state) and reused
    repeats, seeded both ways: the same epochs.csv and test accuracies."""
    import bench.tuning.reuse
    from bench.plan import RunSpec
    from bench.runner import run_study

    def run(name):
        spec = RunSpec(space="seed", image_size=IMAGE_SIZE, epochs=2, repeats=2,
                       max_trials=2, train_per_class=4, pretrain_epochs=1,
                       results_dir=tmp_path, name=name, cache_dir=cache_dir)
        path = run_study(spec, log=lambda *_: None)
        epochs = pd.read_csv(path / "epochs.csv").drop(columns=["run_id", "epoch_seconds"])
        tests = pd.read_csv(path / "trials.csv")["test_accuracy"]
        return epochs, tests

    ours, our_tests = run("set_seed")
    monkeypatch.setattr(bench.tuning.reuse, "set_seed", keras.utils.set_random_seed)
    theirs, their_tests = run("keras")
    assert len(ours) == 2 * 2 * 2
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    pd.testing.assert_series_equal(our_tests, their_tests, check_exact=True)
