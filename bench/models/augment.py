"""Training-time augmentation layers that also define what evaluation sees.

``RandomResizedCrop`` is the crop of the Dive into Deep Learning recipe (torchvision's
``RandomResizedCrop``): in training, a random region of 8% to 100% of the image's area
with an aspect ratio between 3/4 and 4/3, resized to ``size``; in evaluation, the centre
``size`` x ``size`` crop (the recipe resizes test images to 256 and takes the centre 224).
Per-image regions are one affine transform each, so it runs on every Keras backend.
"""

from __future__ import annotations

import math

import keras
from keras import ops


class RandomResizedCrop(keras.layers.Layer):
    def __init__(self, size: int, *, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        images = ops.cast(images, self.compute_dtype)
        height, width = images.shape[1], images.shape[2]
        if not training:
            top, left = (height - self.size) // 2, (width - self.size) // 2
            return images[:, top:top + self.size, left:left + self.size, :]
        batch = ops.shape(images)[0]
        area = keras.random.uniform((batch,), *self.scale, seed=self.seed_generator)
        log_ratio = keras.random.uniform((batch,), math.log(self.ratio[0]),
                                         math.log(self.ratio[1]), seed=self.seed_generator)
        ratio = ops.exp(log_ratio)
        # Fractions of the width and height the region spans (at most the whole image).
        w = ops.minimum(ops.sqrt(area * ratio), 1.0)
        h = ops.minimum(ops.sqrt(area / ratio), 1.0)
        x0 = keras.random.uniform((batch,), seed=self.seed_generator) * (1.0 - w)
        y0 = keras.random.uniform((batch,), seed=self.seed_generator) * (1.0 - h)
        zeros = ops.zeros_like(w)
        # Output pixel (x, y) reads input pixel (w x + x0 W, h y + y0 H).
        transform = ops.stack([w, zeros, x0 * width, zeros, h, y0 * height, zeros, zeros],
                              axis=1)
        stretched = ops.image.affine_transform(images, transform, interpolation="bilinear",
                                               fill_mode="nearest")
        return ops.image.resize(stretched, (self.size, self.size))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "scale": self.scale,
                "ratio": self.ratio}
