"""Training batches in an order fixed by the execution's seed, the same on every backend.

Each epoch's order is a permutation drawn from the seed and the epoch number alone,
so a reused model, a fresh one and a resumed run see the same batches. On the JAX
backend Keras draws the order itself with ``np.random.permutation``; seeding NumPy at
each epoch's start makes that draw this one. On the torch backend Keras's sampler draws
it from torch's global generator, whose state depends on what ran before (a reused
model, a cached prefix): there the suite hands ``fit`` the batches in this order. On the
TensorFlow backend Keras shuffles
with ``tf.random.shuffle`` and builds a new input pipeline every epoch (about 20 ms
each); there the suite hands ``fit`` one pipeline over all epochs in this order instead.
Epochs shortened to ``steps_per_epoch`` batches take their rows from seeded passes laid
end to end (``short_epochs_fit_arguments``). On JAX, a split already on the device
(``bench.tuning.resident``) is batched there, in the same order
(``resident_fit_arguments``).
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
    backend = keras.backend.backend()
    if backend == "jax":
        return ({"x": split.images, "y": split.labels, "batch_size": batch_size,
                 "shuffle": True}, [SeedEachEpoch(seed)])
    if backend != "tensorflow":
        return _in_seed_order(_HostBatches, split, size=len(split), seed=seed,
                              batch_size=batch_size, epochs=epochs,
                              initial_epoch=initial_epoch), []
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


def resident_fit_arguments(on_device, *, seed: int, batch_size: int, epochs: int,
                           initial_epoch: int = 0) -> dict:
    """``model.fit`` arguments that train on a split held on the device (an
    ``OnDevice``): the batches ``seeded_fit_arguments`` makes, gathered on the device."""
    return _in_seed_order(_ResidentBatches, on_device, size=len(on_device.source), seed=seed,
                          batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch)


def _in_seed_order(batches, source, *, size: int, seed: int, batch_size: int, epochs: int,
                   initial_epoch: int) -> dict:
    """``model.fit`` arguments for the ``_EpochBatches`` class ``batches`` over ``source``,
    each epoch from ``initial_epoch`` on in the seed's order."""
    orders = [epoch_order(seed, epoch, size) for epoch in range(initial_epoch, epochs)]
    steps = math.ceil(size / batch_size)
    return {"x": batches(source, orders=[orders], batch_size=batch_size, steps=steps),
            "steps_per_epoch": steps, "shuffle": False}


class _EpochBatches(keras.utils.PyDataset):
    """Every epoch's batches end to end (with ``steps_per_epoch`` Keras keeps one iterator
    over them); ``orders`` holds each member's order per epoch."""

    def __init__(self, *, orders, batch_size, steps):
        super().__init__()
        self.orders, self.batch_size, self.steps = orders, batch_size, steps

    def __len__(self):
        return self.steps * len(self.orders[0])

    def rows(self, index: int, member: int = 0) -> np.ndarray:
        """The rows of batch ``index`` (counted over all epochs) in ``member``'s order."""
        epoch, batch = divmod(index, self.steps)
        return self.orders[member][epoch][batch * self.batch_size:
                                          (batch + 1) * self.batch_size]


class _HostBatches(_EpochBatches):
    """Each batch taken from the split's host arrays."""

    def __init__(self, split: Split, **kwargs):
        super().__init__(**kwargs)
        self.split = split

    def __getitem__(self, index):
        rows = self.rows(index)
        return self.split.images[rows], self.split.labels[rows]


class _ResidentBatches(_EpochBatches):
    """Each batch gathered on the device."""

    def __init__(self, on_device, **kwargs):
        super().__init__(**kwargs)
        self.on_device = on_device

    def __getitem__(self, index):
        return self.on_device.batch(self.rows(index))


def short_epochs_fit_arguments(split: Split, *, seed: int | None, batch_size: int,
                               steps_per_epoch: int, epochs: int,
                               initial_epoch: int = 0) -> dict:
    """``model.fit`` arguments for epochs of ``steps_per_epoch`` batches each.

    The rows run end to end through the epochs: pass ``p`` over the split is
    ``epoch_order(seed, initial_epoch + p, len(split))``, and epoch ``initial_epoch + e``
    trains on the ``e``-th stretch of ``steps_per_epoch * batch_size`` rows. The suite
    lays them out and Keras does not shuffle: with ``steps_per_epoch`` given Keras keeps
    one iterator over all epochs and shuffles once with its backend's own random
    state, which a fresh model (it draws more) and a reused one do not share. Without a
    seed the passes are drawn from NumPy's global state.
    """
    needed = steps_per_epoch * batch_size * (epochs - initial_epoch)
    passes = range(initial_epoch, initial_epoch + -(-needed // len(split)))
    orders = [np.random.permutation(len(split)) if seed is None
              else epoch_order(seed, epoch, len(split)) for epoch in passes]
    rows = np.concatenate(orders)[:needed]
    return {"x": split.images[rows], "y": split.labels[rows], "batch_size": batch_size,
            "steps_per_epoch": steps_per_epoch, "shuffle": False}


def stacked_fit_arguments(splits: list[Split], *, seeds: list[int], batch_size: int,
                          epochs: int) -> dict:
    """``model.fit`` arguments for members trained together (``bench.tuning.together``):
    member ``i`` gets ``splits[i]`` in ``epoch_order(seeds[i], epoch, ...)``, batched
    exactly as ``seeded_fit_arguments`` batches it for that member alone. Inputs are
    named ``x{i}``, targets ``m{i}``. All splits have the same length."""
    size = len(splits[0])
    steps = math.ceil(size / batch_size)
    orders = [np.stack([epoch_order(seed, epoch, size) for epoch in range(epochs)])
              for seed in seeds]
    if keras.backend.backend() != "tensorflow":
        return {"x": _StackedBatches(splits, orders=orders, batch_size=batch_size,
                                     steps=steps), "steps_per_epoch": steps, "shuffle": False}
    import tensorflow as tf

    # One tensor per distinct array: members on the same images share it.
    tensors: dict[int, object] = {}
    images = [tensors.setdefault(id(s.images), tf.convert_to_tensor(s.images)) for s in splits]
    labels = tf.convert_to_tensor(splits[0].labels)
    members = len(seeds)
    # (epochs, size, members): row r of an epoch is each member's r-th row that epoch.
    rows = np.stack(orders, axis=-1)
    batches = tf.data.Dataset.from_tensor_slices(rows).flat_map(
        lambda epoch: tf.data.Dataset.from_tensor_slices(epoch).batch(batch_size))

    def gather(batch):
        x = {f"x{m}": tf.gather(images[m], batch[:, m]) for m in range(members)}
        y = {f"m{m}": tf.gather(labels, batch[:, m]) for m in range(members)}
        return x, y

    return {"x": batches.map(gather), "steps_per_epoch": steps, "shuffle": False}


class _StackedBatches(_EpochBatches):
    """The same batches as the TensorFlow pipeline, for the other backends."""

    def __init__(self, splits, **kwargs):
        super().__init__(**kwargs)
        self.splits = splits

    def __getitem__(self, index):
        x, y = {}, {}
        for m, split in enumerate(self.splits):
            rows = self.rows(index, m)
            x[f"x{m}"], y[f"m{m}"] = split.images[rows], split.labels[rows]
        return x, y
