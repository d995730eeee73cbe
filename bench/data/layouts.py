"""Which splits a data folder holds, and how the missing ones are made.

Layouts of ``--data PATH`` (each class folder holds that class's images, nested folders
included):

- class folders only (``PATH/cats``, ``PATH/dogs``): a seeded, stratified split makes
  70% train, 15% validation, 15% test.
- ``train/`` and ``test/``: 20% of ``train/`` becomes the validation split.
- ``train/`` and ``val/`` (or ``valid/``, ``validation/``): 20% of ``train/`` is held out
  as the test split.
- ``train/``, ``val/`` and ``test/``: used as given.
- ``train/`` alone: split 70/15/15 like class folders.

Once ``train/`` is there, every other folder beside it must be a split folder (a class
folder beside ``train/`` is an error, not a class), and a split folder without
``train/`` is an error. So is a folder that looks like a split under another name
(``training_set/``, ``seg_test/``, ``Train/``: a split word in its name and only folders
in it), which would otherwise be read as a class, and a folder named as a split inside
a class folder (``cats/train/``). A split made from ``train/`` is said
in a note. The same picture (identical pixels once decoded, whatever the file) is never
in two splits: a training or validation image that repeats a test (or validation) image
is dropped and counted, and a class left with no training or validation image is an
error.
``--train-per-class N`` then keeps N images of each class of the training split
(seeded), the others unused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.errors import BenchError

if TYPE_CHECKING:
    from bench.data.datasets import DataRequest, TransferData
    from bench.data.imagefolder import Decoded

VALIDATION_NAMES = ("val", "valid", "validation")
SPLIT_NAMES = ("train", "test", *VALIDATION_NAMES)
SPLIT_WORDS = frozenset({*SPLIT_NAMES, "training", "testing", "eval", "evaluation", "dev"})
#: What ``--data`` takes, for the messages that ask for it.
FOLDER_LAYOUT = ("a folder holding one subfolder per class, or train/ (and val/, test/) each "
                 "holding class subfolders")


@dataclass(frozen=True)
class Layout:
    """The folders a data folder's splits come from; None where a split is to be made."""

    train: Path
    validation: Path | None
    test: Path | None
    split_folders: bool  # False: class folders directly under the data folder


def find_layout(root: Path) -> Layout:
    """Reads which layout ``root`` has (see the module docstring).

    Raises:
        BenchError: for a mix of split and class folders, two validation folders, or
            split folders without ``train/``.
    """
    from bench.data.imagefolder import hidden

    if root.exists() and not root.is_dir():
        raise BenchError(f"--data {root} is a file, not a folder; pass --data with "
                         f"{FOLDER_LAYOUT}")
    if not root.is_dir():
        raise BenchError(f"image folder {root} does not exist; pass --data with "
                         f"{FOLDER_LAYOUT}")
    folders = {p.name for p in root.iterdir() if p.is_dir() and not hidden(p.name)}
    splits = folders & set(SPLIT_NAMES)
    if not splits and len(folders) == 1:
        (only,) = folders
        inside = _split_folders_in(root / only)
        if inside:
            # An archive unzipped into a folder of its own: one "class" holding the splits.
            misnamed = [name for name in inside if name != name.lower()]
            rename = (f", once {', '.join(misnamed)} {'is' if len(misnamed) == 1 else 'are'} "
                      f"renamed {', '.join(name.lower() for name in misnamed)} (split folders "
                      "are named in lower case)" if misnamed else "")
            raise BenchError(f"{root} holds one folder, {only}/, and it holds the split "
                             f"folders {', '.join(inside)}: pass --data {root / only}{rename}")
    if not splits:
        lookalikes = sorted(name for name in folders if _looks_like_a_split(root / name))
        if lookalikes:
            raise BenchError(
                f"{root} has {', '.join(n + '/' for n in lookalikes)}, which look like split "
                "folders, not classes (a split word in the name, only folders inside); name "
                "the splits train/, val/ and test/, each holding the class subfolders, or "
                "pass one of them as --data; if it is a class, rename it")
        _refuse_splits_in_classes(root, root)
        return Layout(train=root, validation=None, test=None, split_folders=False)
    if "train" not in splits:
        misnamed = sorted(f"{name}/" for name in folders - splits
                          if name.lower() in ("train", "training"))
        rename = (f"rename {', '.join(misnamed)} to train/ (split folders are named in lower "
                  "case)" if misnamed else "add train/ with class subfolders, or rename the "
                  "folder if it is a class")
        raise BenchError(f"{root} has {', '.join(sorted(s + '/' for s in splits))} but no "
                         f"train/; {rename}")
    others = sorted(folders - set(SPLIT_NAMES))
    if others:
        raise BenchError(f"{root} has train/ and also {', '.join(o + '/' for o in others)}; "
                         "beside train/ only val/ (or valid/, validation/) and test/ may be, "
                         "each holding the same class subfolders")
    validation = [n for n in VALIDATION_NAMES if n in splits]
    if len(validation) > 1:
        raise BenchError(f"{root} has {' and '.join(v + '/' for v in validation)}; keep one "
                         "validation folder")
    layout = Layout(train=root / "train",
                    validation=root / validation[0] if validation else None,
                    test=root / "test" if "test" in splits else None, split_folders=True)
    for split in (layout.train, layout.validation, layout.test):
        if split is not None:
            _refuse_splits_in_classes(split, root)
    return layout


def _split_folders_in(folder: Path) -> list[str]:
    """The folders directly in ``folder`` named as splits (train/, val/, ...), any case."""
    from bench.data.imagefolder import hidden

    return sorted(f"{p.name}/" for p in folder.iterdir()
                  if p.is_dir() and not hidden(p.name) and p.name.lower() in SPLIT_NAMES)


def _refuse_splits_in_classes(parent: Path, root: Path) -> None:
    """Split folders inside a class folder would be read as part of that class, their
    images pooled and split again: the validation images trained on without a word."""
    from bench.data.imagefolder import hidden

    for folder in sorted(p for p in parent.iterdir() if p.is_dir() and not hidden(p.name)):
        inside = _split_folders_in(folder)
        if inside:
            raise BenchError(
                f"class folder {folder} holds {', '.join(inside)}, which would be read as "
                f"images of class {folder.name!r} and split again; put the split folders "
                f"above the classes ({root}/train/{folder.name}/, {root}/val/{folder.name}/ "
                "...), or rename those folders if they are not splits")


def check_class_folders(layout: Layout) -> None:
    """Checks the class folders of every split folder by names, the part of loading that
    needs no file read: two or more, the same in each split, each with a file named as
    an image somewhere below it.

    Raises:
        BenchError: as ``class_folders`` does, or a class folder without an image name.
    """
    from bench.data.imagefolder import class_folders, class_name, has_image_name, no_images

    classes = class_folders(layout.train)
    names = [class_name(p) for p in classes]
    for folder in (layout.validation, layout.test):
        if folder is not None:
            classes += class_folders(folder, expected=names)
    for folder in classes:
        if not has_image_name(folder):
            raise BenchError(no_images(folder))


def _looks_like_a_split(folder: Path) -> bool:
    from bench.data.imagefolder import hidden

    # Kaggle's training_set/ + test_set/ (each with cats/, dogs/) would be two classes,
    # "which folder", with the test images trained on.
    words = set(re.split(r"[^a-z0-9]+", folder.name.lower()))
    entries = [p for p in folder.iterdir() if not hidden(p.name)]
    return bool(words & SPLIT_WORDS and entries) and all(p.is_dir() for p in entries)


def take_per_class(labels: np.ndarray, count: int, seed: int, *,
                   class_names: tuple[str, ...], where: str,
                   dropped_per_class: tuple[int, ...] = (),
                   crossing_per_class: tuple[int, ...] = ()) -> np.ndarray:
    """Indices of ``count`` images of each class, seeded and sorted (the two
    ``*_per_class`` counts of files dropped as repeats are for the message).

    Raises:
        BenchError: when a class has fewer, saying the largest count that works.
    """
    rng = np.random.default_rng(seed)
    sizes = np.bincount(labels, minlength=len(class_names))
    if sizes.min() < count:
        from bench.data.imagefolder import dropped_words

        small = int(np.argmin(sizes))
        unused = dropped_words(dropped_per_class, small, crossing_per_class)
        raise BenchError(f"--train-per-class {count}: class {class_names[small]!r} has only "
                         f"{sizes[small]} training image(s){unused} in {where}; use at most "
                         f"{sizes.min()}")
    chosen = [rng.permutation(np.flatnonzero(labels == label))[:count]
              for label in range(len(class_names))]
    return np.sort(np.concatenate(chosen))


def _not_in(decoded: Decoded, later: Decoded) -> np.ndarray:
    """A mask of ``decoded``'s images whose pixels ``later`` does not hold."""
    taken = set(later.hashes)
    return np.asarray([h not in taken for h in decoded.hashes], dtype=bool)


def _repeated_in(decoded: Decoded, later: Decoded, *, here: str,
                 there: str) -> dict[int, tuple[str, bool]]:
    """``decoded``'s images that ``later`` holds, by index, each as ("file repeats file
    there", whether under another class), with each file's class where the classes
    differ; ``here`` and ``there`` name the folders."""
    kept = {h: (path, label) for h, path, label in
            zip(later.hashes, later.paths, later.labels.tolist())}
    names = decoded.class_names

    def pair(path: str, label: int, h: str) -> tuple[str, bool]:
        if kept[h][1] == label:
            return f"{here}/{path} repeats {there}/{kept[h][0]}", False
        return (f"{here}/{path} ({names[label]}) repeats {there}/{kept[h][0]} "
                f"({names[kept[h][1]]})", True)

    return {i: pair(path, label, h)
            for i, (h, path, label) in enumerate(zip(decoded.hashes, decoded.paths,
                                                     decoded.labels.tolist()))
            if h in kept}


def _every_class_left(labels: np.ndarray, classes: list[str], where: str, split: str) -> None:
    """Refuses a split that lost a whole class to images repeated in a later split."""
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() == 0:
        empty = classes[int(np.argmin(counts))]
        raise BenchError(f"class {empty!r} has no {split} image left in {where}: every one "
                         "repeats an image of a later split (train < validation < test) and "
                         "was dropped; give that class images of its own in each split")


def _subset(decoded: Decoded, mask: np.ndarray) -> Decoded:
    return replace(decoded, images=decoded.images[mask], labels=decoded.labels[mask],
                   hashes=tuple(h for h, k in zip(decoded.hashes, mask) if k),
                   paths=tuple(p for p, k in zip(decoded.paths, mask) if k))


def _file_notes(root: Path, layout, decoded: list[tuple]) -> list[str]:
    """Notes on files not used: images in no class folder, files that are not images,
    repeats within a folder. ``decoded``: each split folder with what was read there."""
    from bench.data.imagefolder import loose_images, not_images_sentence, repeats_sentence

    notes = []
    folders = [root, *([layout.train, layout.validation, layout.test]
                       if layout.split_folders else [])]
    for folder in [f for f in folders if f is not None]:
        loose = loose_images(folder)
        if loose:
            notes.append(f"{len(loose)} image file(s) directly in {folder} (such as "
                         f"{loose[0]}) are in no class folder and were not used")
    for folder, read in decoded:
        for sentence in (not_images_sentence(read, folder), repeats_sentence(read, folder)):
            if sentence:
                notes.append(sentence)
    return notes


def _drop_crossing(root: Path, layout, train_all, given: dict) -> tuple:
    """Drops from an earlier split (train < validation < test) each image a later one
    repeats. Returns ``(keep, given, crossing, note)``: which training images stay, the
    given splits with validation's repeats of test dropped, how many were dropped, and
    the note saying so (None when none were)."""
    from bench.data.imagefolder import some

    def named(folder: Path) -> str:
        return os.path.relpath(folder, root)

    keep = np.ones(len(train_all.labels), dtype=bool)
    train_pairs: dict[int, tuple[str, bool]] = {}
    for part, decoded in given.items():
        keep &= _not_in(train_all, decoded)
        for i, said in _repeated_in(train_all, decoded, here=named(layout.train),
                                    there=named(getattr(layout, part))).items():
            train_pairs.setdefault(i, said)  # one line for an image in both
    crossing = int((~keep).sum())
    pairs = list(train_pairs.values())
    given = dict(given)
    if "validation" in given and "test" in given:
        val_keep = _not_in(given["validation"], given["test"])
        crossing += int((~val_keep).sum())
        pairs += _repeated_in(given["validation"], given["test"],
                              here=named(layout.validation), there=named(layout.test)).values()
        given["validation"] = _subset(given["validation"], val_keep)
    relabelled = [said for said, elsewhere in pairs if elsewhere]
    same = [said for said, elsewhere in pairs if not elsewhere]
    note = None
    if crossing:
        note = (f"{crossing} image(s) in {root} repeat an image of a later split "
                "(train < validation < test) and were dropped from the earlier one"
                + (f" ({some(same, sep='; ')})" if same else "")
                + (f"; {len(relabelled)} of them under another class there: check "
                   f"those labels ({some(relabelled, sep='; ')})" if relabelled else ""))
    return keep, given, crossing, note


def _split_missing(root: Path, layout, pool: np.ndarray, labels: np.ndarray, *,
                   missing: list[str], names, seed: int,
                   dropped_per_class: tuple[int, ...],
                   crossing_per_class: tuple[int, ...]) -> tuple[dict, str | None]:
    """The training pool's indices per split, carving the splits the folder lacks out of
    it (stratified, seed ``seed``), and the note that says how (None when none lacks)."""
    from bench.data.datasets import split_fractions

    where = layout.train
    if not missing:
        return {"train": pool}, None
    if len(missing) == 1:
        train, made = split_fractions(labels, (0.8, 0.2), seed, class_names=names,
                                      where=where, dropped_per_class=dropped_per_class,
                                      crossing_per_class=crossing_per_class)
        folder = "val/" if missing[0] == "validation" else "test/"
        return ({"train": pool[train], missing[0]: pool[made]},
                f"no {folder} folder in {root}: 20% of {where.name}/ ({len(made)} images, "
                f"stratified, seed {seed}) is the {missing[0]} split")
    train, validation, test = split_fractions(labels, (0.7, 0.15, 0.15), seed,
                                              class_names=names, where=where,
                                              dropped_per_class=dropped_per_class,
                                              crossing_per_class=crossing_per_class)
    held = "train/ only" if layout.split_folders else "class folders only"
    return ({"train": pool[train], "validation": pool[validation], "test": pool[test]},
            f"{root} has {held}: split 70/15/15 into train, validation and test "
            f"({len(train)}, {len(validation)} and {len(test)} images: stratified, "
            f"rounded per class, seed {seed})")


def _train_per_class(parts: dict, train_all, *, per_class: int, seed: int, where: Path,
                     crossing_per_class: tuple[int, ...]) -> tuple[np.ndarray, str | None]:
    """The training indices cut to ``per_class`` images per class (``--train-per-class``),
    and the note that says how many are not used (None when all are)."""
    carved = [part for part in parts if part != "train"]  # taken from the same folder
    chosen = take_per_class(train_all.labels[parts["train"]], per_class, seed,
                            class_names=train_all.class_names,
                            dropped_per_class=train_all.dropped_per_class,
                            crossing_per_class=crossing_per_class,
                            where=f"{where}" + (f", once its {' and '.join(carved)} "
                                                "images were set aside" if carved else ""))
    note = None
    if len(chosen) < len(parts["train"]):
        note = (f"--train-per-class {per_class}: {len(chosen)} of the "
                f"{len(parts['train'])} training images train ({per_class} per class, "
                f"seed {seed}); the other {len(parts['train']) - len(chosen)} are not used")
    return parts["train"][chosen], note


def load_folder_dataset(name: str, root: Path, request: DataRequest) -> TransferData:
    """Train, validation and test splits from an image folder of any layout above.

    Args:
        name: The dataset's name in the run (``folder``, ``hotdog``).
        root: The data folder.
        request: A ``DataRequest`` (image size, seed, train per class, cache folder).
    """
    from bench.data.datasets import Split, TransferData
    from bench.data.imagefolder import load_folder

    layout = find_layout(root)
    size, cache, seed = request.image_size, request.cache_dir, request.seed
    train_all = load_folder(layout.train, size=size, cache_dir=cache)
    classes = list(train_all.class_names)
    given = {part: load_folder(folder, size=size, cache_dir=cache, classes=classes)
             for part, folder in (("validation", layout.validation), ("test", layout.test))
             if folder is not None}
    notes = _file_notes(root, layout, [(layout.train, train_all),
                                       *((getattr(layout, part), given[part])
                                         for part in given)])
    keep, given, crossing, note = _drop_crossing(root, layout, train_all, given)
    notes += [note] if note else []
    pool = np.flatnonzero(keep)
    labels = train_all.labels[pool]
    _every_class_left(labels, classes, f"{layout.train}", "training")
    crossing_per_class = tuple(np.bincount(train_all.labels[~keep],
                                           minlength=len(classes)).tolist())
    if "validation" in given:
        _every_class_left(given["validation"].labels, classes, f"{layout.validation}",
                          "validation")
    parts, note = _split_missing(root, layout, pool, labels,
                                 missing=[p for p in ("validation", "test") if p not in given],
                                 names=train_all.class_names, seed=seed,
                                 dropped_per_class=train_all.dropped_per_class,
                                 crossing_per_class=crossing_per_class)
    notes += [note] if note else []
    if request.train_per_class is not None:
        parts["train"], note = _train_per_class(parts, train_all, seed=seed,
                                                per_class=request.train_per_class,
                                                where=layout.train,
                                                crossing_per_class=crossing_per_class)
        notes += [note] if note else []

    def split(part: str) -> Split:
        if part in parts:
            return Split(train_all.images[parts[part]], train_all.labels[parts[part]])
        return Split(given[part].images, given[part].labels)

    loaded = [train_all, *given.values()]
    return TransferData(
        name=name, class_names=train_all.class_names, train=split("train"),
        validation=split("validation"), test=split("test"),
        skipped_files=tuple(p for d in loaded for p in d.skipped),
        duplicates_dropped=sum(d.duplicates for d in loaded) + crossing,
        notes=tuple(notes))
