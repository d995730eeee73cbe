"""The shapes generator renders in threads; its images must be those of one at a time."""

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench.data.shapes import SOURCE_SHAPES, TARGET_SHAPES, _draw, render_shapes


def _one_at_a_time(shapes, *, per_class, image_size, seed):
    # The generator as it was before threads (commit f5827cc), kept as the second path.
    rng = np.random.default_rng(seed)
    side = image_size * 4
    images = np.empty((len(shapes) * per_class, image_size, image_size, 3), np.uint8)
    labels = np.repeat(np.arange(len(shapes), dtype=np.int32), per_class)
    for index, label in enumerate(labels):
        background = rng.integers(0, 120, size=3)
        noise = rng.normal(0, 18, size=(side, side, 3))
        canvas = np.clip(background + noise, 0, 255).astype(np.uint8)
        image = Image.fromarray(canvas)
        r = rng.uniform(0.22, 0.38) * side
        cx, cy = rng.uniform(r, side - r, size=2)
        colour = tuple(int(c) for c in rng.integers(140, 256, size=3))
        _draw(ImageDraw.Draw(image), shapes[label], cx, cy, r, rng.uniform(0, 2 * math.pi),
              colour, max(2, int(side * 0.07)))
        images[index] = np.asarray(image.resize((image_size, image_size), Image.BILINEAR))
    return images, labels


@pytest.mark.parametrize("shapes, image_size, seed", [
    (SOURCE_SHAPES, 24, 1), (TARGET_SHAPES, 40, 7920)])
def test_threaded_rendering_gives_the_images_of_one_at_a_time(shapes, image_size, seed):
    # 6 per class: more images than the threads keep waiting, so the queue wraps round.
    images, labels = render_shapes(shapes, per_class=6, image_size=image_size, seed=seed)
    expected_images, expected_labels = _one_at_a_time(shapes, per_class=6,
                                                      image_size=image_size, seed=seed)
    assert images.shape == (30, image_size, image_size, 3)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(images, expected_images)
