"""Training batches in an order fixed by the execution's seed, the same on every backend.

Each epoch's order is a permutation drawn from the seed and the epoch number alone,
so a reused model, a fresh one and a resumed run see the same batches. On the JAX
backend Keras draws the order itself with ``np.random.permutation``; seeding NumPy at
each epoch's start makes that draw this one. On the TensorFlow backend Keras shuffles
with ``tf.random.shuffle`` and builds a new input pipeline every epoch (about 20 ms
each); there the suite hands ``fit`` one pipeline over all epochs in this order instead.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from bench.data.datasets import Split


def epoch_seed(seed: int, epoch: int) -> int:
    """The NumPy seed of an execution's epoch (0-based)."""
    return (seed * 100_003 + epoch) % 2**32


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """The order of the ``size`` training rows in ``epoch`` of the execution seeded ``seed``:
    what ``np.random.permutation(size)`` returns after ``np.random.seed(epoch_seed(...))``."""
    return np.random.RandomState(epoch_seed(seed, epoch)).permutation(size)


class SeedEachEpoch(keras.callbacks.Callback):
    """Seeds NumPy at each epoch's start, where Keras (JAX backend) draws the order.

    Without it the first ``fit`` of a new model, which draws one more order than a
    reused model's (to trace the step), would shift every later epoch's order.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        np.random.seed(epoch_seed(self.seed, epoch))


def seeded_fit_arguments(split: Split, *, seed: int, batch_size: int, epochs: int,
                         initial_epoch: int = 0) -> tuple[dict, list]:
    """``model.fit`` arguments (and callbacks) that train on ``split`` in the seed's order.

    Epochs ``initial_epoch`` to ``epochs - 1`` each see every row once, in
    ``epoch_order(seed, epoch, len(split))``, in batches of ``batch_size`` (the last one
    partial), exactly as Keras batches an array.
    """
    if keras.backend.backend() != "tensorflow":
        return ({"x": split.images, "y": split.labels, "batch_size": batch_size,
                 "shuffle": True}, [SeedEachEpoch(seed)])
    import tensorflow as tf

    orders = np.stack([epoch_order(seed, epoch, len(split))
                       for epoch in range(initial_epoch, epochs)])
    images, labels = tf.convert_to_tensor(split.images), tf.convert_to_tensor(split.labels)
    batches = tf.data.Dataset.from_tensor_slices(orders).flat_map(
        lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    dataset = batches.map(lambda rows: (tf.gather(images, rows), tf.gather(labels, rows)))
    # With steps_per_epoch given, Keras keeps one iterator over the epochs.
    return ({"x": dataset, "steps_per_epoch": math.ceil(len(split) / batch_size),
             "shuffle": False}, [])
