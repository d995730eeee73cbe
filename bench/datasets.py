"""Datasets by name: a target task split three ways, and a source task for pretraining.

Images are uint8 arrays of shape ``(n, size, size, 3)`` decoded once; every backbone
takes them as they are and preprocesses inside the model, so one array serves all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from bench.errors import unknown_name


@dataclass(frozen=True)
class Split:
    """Images (uint8, NHWC, RGB) and integer labels."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DataRequest:
    """What a dataset loader is asked for.

    Attributes:
        image_size: Side of the square images handed to the model.
        seed: Fixes which images go to which split.
        train_per_class: Labelled target images per class; None takes the dataset's default.
        images_per_class: For generated datasets, images made per class (each task).
    """

    image_size: int
    seed: int = 1
    train_per_class: int | None = None
    images_per_class: int | None = None


@dataclass(frozen=True)
class TransferData:
    """A target task (train, validation for the tuner, a held-out test) and its source task."""

    name: str
    class_names: tuple[str, ...]
    train: Split
    validation: Split
    test: Split
    source: Split | None = None
    source_class_names: tuple[str, ...] = ()

    def summary(self) -> str:
        source = f", source {len(self.source)} images" if self.source is not None else ""
        return (
            f"{self.name}: {len(self.class_names)} classes, train {len(self.train)}, "
            f"validation {len(self.validation)}, test {len(self.test)}{source}"
        )


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    load: Callable[[DataRequest], TransferData]


def split_per_class(labels: np.ndarray, train_per_class: int, seed: int) -> tuple[np.ndarray, ...]:
    """Indices for train (``train_per_class`` of each class) and the rest halved into
    validation and test, stratified and fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    train, validation, test = [], [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < train_per_class + 2:
            raise ValueError(
                f"class {label} has {len(members)} images; need at least {train_per_class + 2}"
            )
        rest = members[train_per_class:]
        half = len(rest) // 2
        train.append(members[:train_per_class])
        validation.append(rest[:half])
        test.append(rest[half:])
    return tuple(np.sort(np.concatenate(part)) for part in (train, validation, test))


def _to_rgb(gray: np.ndarray, image_size: int) -> np.ndarray:
    """Resizes float images in [0, 1] to uint8 RGB of the given side."""
    out = np.empty((len(gray), image_size, image_size, 3), np.uint8)
    for index, image in enumerate(gray):
        pil = Image.fromarray((image * 255).round().astype(np.uint8))
        resized = np.asarray(pil.resize((image_size, image_size), Image.BILINEAR))
        out[index] = resized[..., None]
    return out


def _target_splits(images, labels, train_per_class, seed) -> tuple[Split, Split, Split]:
    indices = split_per_class(labels, train_per_class, seed)
    return tuple(Split(images[i], labels[i]) for i in indices)


def load_digits(request: DataRequest) -> TransferData:
    # scikit-learn's bundled copy: 1,797 real 8x8 scans, no download.
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = _to_rgb(bunch.images / 16.0, request.image_size)
    digits = bunch.target.astype(np.int32)
    source = digits < 5
    train, validation, test = _target_splits(
        images[~source], digits[~source] - 5, request.train_per_class or 20, request.seed
    )
    return TransferData(
        name="digits",
        class_names=tuple(str(d) for d in range(5, 10)),
        train=train,
        validation=validation,
        test=test,
        source=Split(images[source], digits[source]),
        source_class_names=tuple(str(d) for d in range(5)),
    )


def load_shapes(request: DataRequest) -> TransferData:
    from bench.shapes import SOURCE_SHAPES, TARGET_SHAPES, render_shapes

    per_class = request.images_per_class or 120
    train_per_class = request.train_per_class or 20
    if per_class < train_per_class + 2:
        raise ValueError(f"images_per_class must be at least train_per_class + 2 = "
                         f"{train_per_class + 2}")
    source_images, source_labels = render_shapes(
        SOURCE_SHAPES, per_class=per_class, image_size=request.image_size, seed=request.seed
    )
    target_images, target_labels = render_shapes(
        TARGET_SHAPES, per_class=per_class, image_size=request.image_size,
        seed=request.seed + 7919,
    )
    train, validation, test = _target_splits(
        target_images, target_labels, train_per_class, request.seed
    )
    return TransferData(
        name="shapes",
        class_names=TARGET_SHAPES,
        train=train,
        validation=validation,
        test=test,
        source=Split(source_images, source_labels),
        source_class_names=SOURCE_SHAPES,
    )


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", "scikit-learn's handwritten digits (bundled): source 0-4, "
                    "target 5-9 with 20 labelled images per class", load_digits),
        DatasetInfo("shapes", "generated coloured shapes, any size: 5 source shapes, 5 "
                    "other target shapes", load_shapes),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise unknown_name("dataset", name, list(DATASETS))
    return DATASETS[name]


def load_dataset(name: str, request: DataRequest) -> TransferData:
    """Loads a registered dataset; an unknown name raises BenchError listing the valid ones."""
    return dataset_info(name).load(request)
