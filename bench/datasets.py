"""Datasets by name: a target task split three ways, and a source task for pretraining.

Images are uint8 arrays of shape ``(n, size, size, 3)`` decoded once; every backbone
takes them as they are and preprocesses inside the model, so one array serves all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.errors import BenchError, unknown_name


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
    data: Path | None = None  # an image folder (dataset "folder")
    data_dir: Path | None = None  # where downloaded datasets are kept
    cache_dir: Path | None = None  # where decoded images are cached


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


def split_fractions(labels: np.ndarray, fractions: tuple[float, ...], seed: int
                    ) -> tuple[np.ndarray, ...]:
    """Stratified split of indices into parts of the given fractions (the last takes the
    rest), fixed by ``seed``; every part gets at least one image of each class."""
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < len(fractions):
            raise BenchError(f"class {label} has {len(members)} image(s); a split into "
                             f"{len(fractions)} parts needs at least {len(fractions)}")
        start = 0
        for i, fraction in enumerate(fractions):
            if i == len(fractions) - 1:
                count = len(members) - start
            else:
                count = max(1, round(fraction * len(members)))
                count = min(count, len(members) - start - (len(fractions) - 1 - i))
            parts[i].append(members[start:start + count])
            start += count
    return tuple(np.sort(np.concatenate(part)) for part in parts)


def _from_folders(name: str, root: Path, request: DataRequest) -> TransferData:
    """Train/validation/test from ``root``: ``train/`` and ``test/``, or class folders."""
    from bench.imagefolder import load_folder

    def take(decoded, index) -> Split:
        return Split(decoded.images[index], decoded.labels[index])

    if (root / "train").is_dir() and (root / "test").is_dir():
        train_all = load_folder(root / "train", size=request.image_size,
                                cache_dir=request.cache_dir)
        test = load_folder(root / "test", size=request.image_size, cache_dir=request.cache_dir,
                           classes=list(train_all.class_names))
        train, validation = split_fractions(train_all.labels, (0.8, 0.2), request.seed)
        return TransferData(name=name, class_names=train_all.class_names,
                            train=take(train_all, train), validation=take(train_all, validation),
                            test=Split(test.images, test.labels))
    decoded = load_folder(root, size=request.image_size, cache_dir=request.cache_dir)
    train, validation, test = split_fractions(decoded.labels, (0.7, 0.15, 0.15), request.seed)
    return TransferData(name=name, class_names=decoded.class_names, train=take(decoded, train),
                        validation=take(decoded, validation), test=take(decoded, test))


def load_image_folder(request: DataRequest) -> TransferData:
    if request.data is None:
        raise BenchError("dataset 'folder' needs --data PATH: a folder with one subfolder per "
                         "class, or train/ and test/ each holding class subfolders")
    return _from_folders("folder", Path(request.data), request)


HOTDOG_URLS = ["http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip",
               "https://apache-mxnet.s3-accelerate.amazonaws.com/gluon/dataset/hotdog.zip"]
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"
HOTDOG_COUNTS = {"train": 2000, "test": 800}


def load_hotdog(request: DataRequest, *, urls: list[str] = HOTDOG_URLS,
                sha1: str = HOTDOG_SHA1) -> TransferData:
    """The Dive into Deep Learning hot dog dataset, downloaded once and verified."""
    from bench.download import download_and_extract
    from bench.imagefolder import EXTENSIONS

    data_dir = Path(request.data_dir or Path(request.cache_dir or ".") / "data")
    root = download_and_extract(urls=urls, sha1=sha1, archive_name="hotdog.zip",
                                data_dir=data_dir, folder="hotdog")
    for part, expected in HOTDOG_COUNTS.items():
        found = sum(1 for p in (root / part).rglob("*") if p.suffix.lower() in EXTENSIONS)
        if found != expected:
            raise BenchError(f"{root / part} holds {found} images, expected {expected}; remove "
                             f"{root} to download it again")
    data = _from_folders("hotdog", root, request)
    return data


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", "scikit-learn's handwritten digits (bundled): source 0-4, "
                    "target 5-9 with 20 labelled images per class", load_digits),
        DatasetInfo("shapes", "generated coloured shapes, any size: 5 source shapes, 5 "
                    "other target shapes", load_shapes),
        DatasetInfo("hotdog", "Dive into Deep Learning's hot dog photos (downloaded once, "
                    "SHA-1 checked): 2,000 train, 800 test; no source task", load_hotdog),
        DatasetInfo("folder", "your images: --data PATH with one subfolder per class, or "
                    "train/ and test/; no source task", load_image_folder),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise unknown_name("dataset", name, list(DATASETS))
    return DATASETS[name]


def load_dataset(name: str, request: DataRequest) -> TransferData:
    """Loads a registered dataset; an unknown name raises BenchError listing the valid ones."""
    return dataset_info(name).load(request)
