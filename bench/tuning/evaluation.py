"""Evaluating a split in one call of the compiled test step where it fits in one batch."""

from __future__ import annotations

import keras

from bench.data.datasets import Split


class OneBatchValidation(keras.callbacks.Callback):
    """Validates at the end of every epoch with one call of the compiled test step.

    When the validation split fits in one evaluation batch, ``evaluate`` would run that
    same single batch, but first builds an iterator and its callbacks: on a small study
    that costs more than the validation itself. The ``val_*`` values are put into the
    epoch's logs before any later callback (the recorder) reads them.
    """

    def __init__(self, batch: OneBatch):
        super().__init__()
        self.batch = batch

    def on_epoch_end(self, epoch, logs=None):
        results = self.batch.evaluate(self.model, return_dict=True)
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in results.items()})


class OneBatch:
    """Images and labels (a split, or dicts of them for a model with named inputs and
    outputs) evaluated as one batch: one call of a model's compiled test step, which is
    what ``evaluate`` runs for data that fits in one batch, without the iterator and
    callbacks it builds first (on a small study, more than the pass itself)."""

    def __init__(self, images, labels, *, split: Split | None = None):
        # Tensors, not NumPy arrays: TensorFlow traces a function again for every NumPy
        # argument, and a trace costs more than the evaluation.
        self.images = keras.tree.map_structure(keras.ops.convert_to_tensor, images)
        self.labels = keras.tree.map_structure(keras.ops.convert_to_tensor, labels)
        self.split = split

    @classmethod
    def of(cls, split: Split) -> OneBatch:
        return cls(split.images, split.labels, split=split)

    @classmethod
    def replacing(cls, split: Split) -> OneBatch:
        """The same, its ``split`` made of its own tensors (and the host labels): the host
        images can go."""
        batch = cls.of(split)
        batch.split = Split(batch.images, split.labels)
        return batch

    def holds(self, split: Split) -> bool:
        """Whether this batch is ``split`` (the very arrays it was converted from)."""
        return (self.split is not None and self.split.images is split.images
                and self.split.labels is split.labels)

    def evaluate(self, model, *, return_dict: bool = False):
        """``model.evaluate(images, labels)``'s result with the whole data as one batch."""
        return model.test_on_batch(self.images, self.labels, return_dict=return_dict)


def evaluate_split(model, split: Split, *, batch_size: int,
                   one_batch: OneBatch | None = None) -> dict:
    """``model.evaluate`` on ``split`` in batches of ``batch_size``, as a dict by metric
    name; ``one_batch`` (the same split as tensors) evaluates it in one call where it
    fits."""
    if one_batch is not None and len(split) <= batch_size:
        return one_batch.evaluate(model, return_dict=True)
    return model.evaluate(split.images, split.labels, batch_size=batch_size, verbose=0,
                          return_dict=True)
