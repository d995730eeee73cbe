"""Datasets by name: a target task split three ways, and a source task for pretraining.

Images are uint8 arrays of shape ``(n, size, size, 3)`` decoded once; every backbone
takes them as they are and preprocesses inside the model, so one array serves all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.layouts import FOLDER_LAYOUT, check_class_folders, find_layout
from bench.errors import BenchError, unknown_name


@dataclass(frozen=True)
class Split:
    """Images (uint8, NHWC, RGB) and integer labels."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def splits_sha256(*splits: Split) -> str:
    """SHA-256 of the splits' images and labels, in order: equal exactly when the arrays
    are."""
    digest = hashlib.sha256()
    for split in splits:
        for array in (split.images, split.labels):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
    return digest.hexdigest()


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
    #: Only the source task is wanted (``--source-dataset``: another dataset is the
    #: target), so a loader may leave its target splits empty.
    source_only: bool = False
    #: Only the target task is wanted (another dataset's source task pretrains), so a
    #: loader may leave its source task out.
    target_only: bool = False


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
    #: Unreadable files left out (image folders), every one of them.
    skipped_files: tuple[str, ...] = ()
    #: Files left out for repeating another file's bytes, within or across splits.
    duplicates_dropped: int = 0
    #: How splits were made where the data did not give them, one sentence each.
    notes: tuple[str, ...] = ()

    def summary(self, *, source: bool = True) -> str:
        """One line on the splits; ``source=False`` leaves out the source task's count
        (another dataset's source task is used)."""
        source = (f", source {len(self.source)} images"
                  if source and self.source is not None else "")
        skipped = (f"; {len(self.skipped_files)} unreadable file(s) skipped"
                   if self.skipped_files else "")
        repeated = (f"; {self.duplicates_dropped} repeated file(s) dropped"
                    if self.duplicates_dropped else "")
        return (
            f"{self.name}: {len(self.class_names)} classes, train {len(self.train)}, "
            f"validation {len(self.validation)}, test {len(self.test)}{source}{skipped}"
            f"{repeated}"
        )


#: The command-line options a DataRequest carries, by field.
REQUEST_OPTIONS = {"train_per_class": "--train-per-class",
                   "images_per_class": "--images-per-class", "data": "--data",
                   "data_dir": "--data-dir"}

#: The largest image side a dataset is made at; beyond it no backbone here is meant to run.
MAX_IMAGE_SIZE = 1024


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its loader, the request options it reads, and whether it has
    a source task of its own to pretrain on (``--source-dataset`` needs one)."""

    name: str
    description: str
    load: Callable[[DataRequest], TransferData]
    options: frozenset[str] = frozenset({"train_per_class"})
    has_source: bool = True


def check_options(datasets: list[str], **given) -> None:
    """Refuses an option none of the named datasets reads (None means not given).

    Raises:
        BenchError: naming the option and the datasets that do read it.
    """
    for field, value in given.items():
        if value is None or any(field in dataset_info(d).options for d in datasets):
            continue
        readers = [info.name for info in DATASETS.values() if field in info.options]
        raise BenchError(f"{REQUEST_OPTIONS[field]} does not apply to dataset "
                         f"{' or '.join(repr(d) for d in datasets)}; it is for "
                         f"{', '.join(readers)}: drop it or pick one of those with --dataset")


def split_per_class(labels: np.ndarray, train_per_class: int, seed: int) -> tuple[np.ndarray, ...]:
    """Indices for train (``train_per_class`` of each class) and the rest halved into
    validation and test, stratified and fixed by ``seed``.

    Raises:
        BenchError: when a class cannot spare ``train_per_class`` images and keep one each
            for validation and test, saying the largest value that works.
    """
    rng = np.random.default_rng(seed)
    smallest = int(np.bincount(labels).min())
    if smallest < train_per_class + 2:
        raise BenchError(f"--train-per-class {train_per_class} is too many: the smallest "
                         f"target class has {smallest} images and keeps 2 for validation and "
                         f"test; use at most {smallest - 2}")
    train, validation, test = [], [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
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

    from bench.data.imagefolder import check_memory

    bunch = sklearn_digits()
    check_memory(len(bunch.images), request.image_size, what="digits")
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


def _rendered(shapes, *, per_class, image_size, seed, cache_dir):
    """``render_shapes``, kept under ``cache_dir/generated`` when there is one: at 224 px
    the noise alone is 150,528 random normals per image, drawn in one stream (about 40 ms
    an image on this project's CPU), and a cached copy loads in a fraction of that."""
    from bench.data import shapes as generator

    if cache_dir is None:
        return generator.render_shapes(shapes, per_class=per_class, image_size=image_size,
                                       seed=seed)
    import PIL

    from bench.data.arraycache import read_arrays, to_stderr, write_arrays
    from bench.device import code_sha256

    # What the images depend on: the request, and the code and libraries that draw them.
    made_by = (f"{','.join(shapes)}|{per_class}|{image_size}|{seed}|numpy {np.__version__}|"
               f"Pillow {PIL.__version__}|{code_sha256(generator)}")
    path = (Path(cache_dir) / "generated" /
            f"shapes-{image_size}px-{hashlib.sha1(made_by.encode()).hexdigest()[:20]}.npz")
    arrays = read_arrays(path, what="generated-image", redo="generating again", log=to_stderr)
    if arrays is not None and set(arrays) == {"images", "labels"}:
        return arrays["images"], arrays["labels"]
    images, labels = generator.render_shapes(shapes, per_class=per_class,
                                             image_size=image_size, seed=seed)
    write_arrays(path, {"images": images, "labels": labels}, what="generated-image",
                 log=to_stderr)
    return images, labels


def load_shapes(request: DataRequest) -> TransferData:
    from bench.data.shapes import SOURCE_SHAPES, TARGET_SHAPES

    per_class = request.images_per_class or 120
    train_per_class = request.train_per_class or 20
    if per_class < train_per_class + 2 and not request.source_only:
        raise BenchError(f"--images-per-class {per_class} is too few for --train-per-class "
                         f"{train_per_class}: it must be at least {train_per_class + 2}")
    from bench.data.imagefolder import check_memory

    rendered_tasks = 1 if request.source_only or request.target_only else 2
    check_memory(rendered_tasks * len(SOURCE_SHAPES) * per_class, request.image_size,
                 what="generating shapes")
    if request.source_only:
        images, labels = _rendered(SOURCE_SHAPES, per_class=per_class,
                                   image_size=request.image_size, seed=request.seed,
                                   cache_dir=request.cache_dir)
        none = Split(images[:0], labels[:0])
        return TransferData(name="shapes", class_names=TARGET_SHAPES, train=none,
                            validation=none, test=none, source=Split(images, labels),
                            source_class_names=SOURCE_SHAPES)
    tasks = {"target": (TARGET_SHAPES, request.seed + 7919)}
    if not request.target_only:
        tasks["source"] = (SOURCE_SHAPES, request.seed)
    # Each task is one stream of random numbers, so the two render side by side.
    with ThreadPoolExecutor(len(tasks)) as pool:
        rendered = dict(zip(tasks, pool.map(
            lambda shapes, seed: _rendered(shapes, per_class=per_class,
                                           image_size=request.image_size, seed=seed,
                                           cache_dir=request.cache_dir),
            *zip(*tasks.values()))))
    train, validation, test = _target_splits(*rendered["target"], train_per_class,
                                             request.seed)
    return TransferData(
        name="shapes",
        class_names=TARGET_SHAPES,
        train=train,
        validation=validation,
        test=test,
        source=Split(*rendered["source"]) if "source" in rendered else None,
        source_class_names=SOURCE_SHAPES if "source" in rendered else (),
    )


def split_fractions(labels: np.ndarray, fractions: tuple[float, ...], seed: int, *,
                    class_names: tuple[str, ...] | None = None,
                    where: Path | None = None,
                    dropped_per_class: tuple[int, ...] = (),
                    crossing_per_class: tuple[int, ...] = ()) -> tuple[np.ndarray, ...]:
    """Stratified split of indices into parts of the given fractions (the last takes the
    rest), fixed by ``seed``; every part gets at least one image of each class (of the
    folder ``where``, whose ``dropped_per_class`` files repeated a picture of it and
    ``crossing_per_class`` one of a later split: for the message)."""
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < len(fractions):
            name = repr(class_names[label]) if class_names else label
            folder = f" in {where}" if where is not None else ""
            from bench.data.imagefolder import dropped_words

            unused = dropped_words(dropped_per_class, label, crossing_per_class)
            raise BenchError(f"class {name}{folder} has {len(members)} image(s){unused}; "
                             f"a split into {len(fractions)} parts needs at least "
                             f"{len(fractions)}: add images to that class, or remove it "
                             "from every split")
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


def check_image_folder(data: Path | None) -> Path:
    """The ``--data`` folder of dataset 'folder', its layout and class folders checked
    (names only, no image opened: cheap enough to run before Keras loads).

    Raises:
        BenchError: when ``data`` is missing, is not a folder, has no layout it reads, has
            fewer than two classes, other classes in one split than in train/, or a class
            folder without a file named as an image.
    """
    if data is None:
        raise BenchError(f"dataset 'folder' needs --data PATH: {FOLDER_LAYOUT}")

    check_class_folders(find_layout(Path(data)))
    return Path(data)


def load_image_folder(request: DataRequest) -> TransferData:
    from bench.data.layouts import load_folder_dataset

    return load_folder_dataset("folder", check_image_folder(request.data), request)


HOTDOG_URLS = ["http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip",
               "https://apache-mxnet.s3-accelerate.amazonaws.com/gluon/dataset/hotdog.zip"]
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"
HOTDOG_COUNTS = {"train": 2000, "test": 800}


def load_hotdog(request: DataRequest, *, urls: list[str] = HOTDOG_URLS,
                sha1: str = HOTDOG_SHA1) -> TransferData:
    """The Dive into Deep Learning hot dog dataset, downloaded once and verified."""
    from bench.data.download import download_and_extract
    from bench.data.imagefolder import class_folders, list_images

    data_dir = Path(request.data_dir or Path(request.cache_dir or ".") / "data")
    root = download_and_extract(urls=urls, sha1=sha1, archive_name="hotdog.zip",
                                data_dir=data_dir, folder="hotdog")
    for part, expected in HOTDOG_COUNTS.items():
        # Counted as the loader lists them (hidden files such as macOS's ._ copies are no
        # images), so the check and the load agree on what an image is.
        try:
            found = len(list_images(class_folders(root / part)))
        except BenchError:  # a split or class folder gone: damaged all the same
            found = 0
        if found != expected:
            raise BenchError(f"{root / part} holds {found} images, expected {expected}; remove "
                             f"{root} to download it again")
    from bench.data.layouts import load_folder_dataset

    return load_folder_dataset("hotdog", root, request)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", "scikit-learn's handwritten digits (bundled): source 0-4, "
                    "target 5-9 with 20 labelled images per class", load_digits),
        DatasetInfo("shapes", "generated coloured shapes, any size: 5 source shapes, 5 "
                    "other target shapes", load_shapes,
                    frozenset({"train_per_class", "images_per_class"})),
        DatasetInfo("hotdog", "Dive into Deep Learning's hot dog photos (downloaded once, "
                    "SHA-1 checked): 2,000 train, 800 test; no source task", load_hotdog,
                    frozenset({"train_per_class", "data_dir"}), has_source=False),
        DatasetInfo("folder", "your images: --data PATH with one subfolder per class, or "
                    "train/ with val/ and/or test/; no source task", load_image_folder,
                    frozenset({"train_per_class", "data"}), has_source=False),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise unknown_name("dataset", name, list(DATASETS))
    return DATASETS[name]


def load_dataset(name: str, request: DataRequest) -> TransferData:
    """Loads a registered dataset; an unknown name raises BenchError listing the valid ones."""
    return dataset_info(name).load(request)
