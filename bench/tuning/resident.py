"""Training data kept on the accelerator, copied there once instead of every batch.

Keras's JAX trainer takes arrays on the host: every batch is gathered there and copied
to the device, in every epoch of every execution (it turns a JAX array it is given back
into a NumPy one first). For images that is little, but the frozen-prefix cache's
features are float32 and several times larger than the uint8 images they came from
(14 x 14 x 1,024 floats per image halfway through ResNet50V2 at 224 px, 800 KB against
150 KB), and a GPU then spends its epochs waiting for copies. Here a split is put on the
device once and each batch is gathered there, in the seed's order: the same rows, in the
same batches, so the same numbers (``tests/test_resident.py`` compares them on JAX).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from bench.data.datasets import Split


def device_data_wanted() -> bool:
    """Whether splits go to the device once: on the JAX backend (on a CPU the "device" is
    host memory, and the path is the same, so the tests run it)."""
    return keras.backend.backend() == "jax"


@dataclass(frozen=True)
class OnDevice:
    """A split's images and labels as device arrays, and the host split they copy."""

    source: Split
    images: object  # jax.Array
    labels: object

    @classmethod
    def of(cls, split: Split, *, keep_host: bool = True) -> OnDevice:
        """``split`` copied to the device; without ``keep_host``, ``source`` is a split of
        the device images (and the host labels) and the host's images can go."""
        import jax

        images = jax.device_put(split.images)
        source = split if keep_host else Split(images, split.labels)
        return cls(source=source, images=images, labels=jax.device_put(split.labels))

    def holds(self, split: Split) -> bool:
        """Whether this is ``split`` (the very arrays, not equal ones): a fit hook that
        hands ``run.fit`` other data never trains on a stale copy."""
        return split.images is self.source.images and split.labels is self.source.labels

    def batch(self, rows):
        """The rows ``rows`` (host indices) of images and labels, gathered on the device."""
        import jax.numpy as jnp

        rows = jnp.asarray(rows)
        return jnp.take(self.images, rows, axis=0), jnp.take(self.labels, rows, axis=0)
