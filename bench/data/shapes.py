"""A procedural image generator: coloured shapes on noisy backgrounds.

Deterministic from a seed, any number of images, any size. Its classes come in two
disjoint groups so one group can serve as a source task and the other as the target.
"""

from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageDraw

SOURCE_SHAPES = ("circle", "square", "triangle", "cross", "hexagon")
TARGET_SHAPES = ("ring", "diamond", "star", "bar", "pentagon")


def _polygon(cx: float, cy: float, r: float, sides: int, turn: float) -> list[tuple]:
    return [
        (cx + r * math.cos(turn + 2 * math.pi * k / sides),
         cy + r * math.sin(turn + 2 * math.pi * k / sides))
        for k in range(sides)
    ]


def _star(cx: float, cy: float, r: float, turn: float) -> list[tuple]:
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.45
        angle = turn + math.pi * k / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx, cy, r, turn, colour, width) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=width)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, r * 1.2, 4, turn * 0.2 + math.pi / 4), fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r * 0.6, cy), (cx, cy + r), (cx - r * 0.6, cy)],
                     fill=colour)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3, turn), fill=colour)
    elif shape == "pentagon":
        draw.polygon(_polygon(cx, cy, r, 5, turn), fill=colour)
    elif shape == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, turn), fill=colour)
    elif shape == "star":
        draw.polygon(_star(cx, cy, r, turn), fill=colour)
    elif shape == "cross":
        draw.line([(cx - r, cy), (cx + r, cy)], fill=colour, width=width)
        draw.line([(cx, cy - r), (cx, cy + r)], fill=colour, width=width)
    elif shape == "bar":
        dx, dy = r * math.cos(turn), r * math.sin(turn)
        draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=colour, width=width)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_shapes(
    shapes: tuple[str, ...], *, per_class: int, image_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Renders ``per_class`` images of each shape.

    Returns:
        ``(images, labels)``: uint8 of shape ``(n, image_size, image_size, 3)`` and int32
        labels indexing ``shapes``, in class-major order.
    """
    rng = np.random.default_rng(seed)
    scale = 4  # Draw large and shrink: anti-aliased edges at any size.
    side = image_size * scale
    images = np.empty((len(shapes) * per_class, image_size, image_size, 3), np.uint8)
    labels = np.repeat(np.arange(len(shapes), dtype=np.int32), per_class)
    width = max(2, int(side * 0.07))

    def finish(index: int, background, noise, shape: str, cx, cy, r, turn, colour) -> None:
        np.add(noise, background, out=noise)
        np.clip(noise, 0, 255, out=noise)
        image = Image.fromarray(noise.astype(np.uint8))
        _draw(ImageDraw.Draw(image), shape, cx, cy, r, turn, colour, width)
        images[index] = np.asarray(image.resize((image_size, image_size), Image.BILINEAR))

    # The draws stay in one thread, in the order that fixes every image; the rest of each
    # image (about 40% of its time at 224 px) runs beside the next one's draws.
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for index, label in enumerate(labels):
            background = rng.integers(0, 120, size=3)
            noise = rng.normal(0, 18, size=(side, side, 3))
            r = rng.uniform(0.22, 0.38) * side
            cx, cy = rng.uniform(r, side - r, size=2)
            colour = tuple(int(c) for c in rng.integers(140, 256, size=3))
            turn = rng.uniform(0, 2 * math.pi)
            pending.append(pool.submit(finish, index, background, noise, shapes[label],
                                       cx, cy, r, turn, colour))
            while len(pending) > 2 * workers:  # each waiting canvas holds side**2 * 24 bytes
                pending.popleft().result()
        for future in pending:
            future.result()
    return images, labels
