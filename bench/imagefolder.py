"""Datasets from image folders: decode once with Pillow, cache as uint8 arrays.

A folder holds one subfolder per class, or ``train/`` and ``test/`` each holding class
subfolders. Images are turned upright (EXIF orientation), converted to RGB (grayscale,
RGBA, palette and 16-bit alike), resized, and cached under a key made from the files'
paths, sizes and modification times, so a second run decodes nothing. Unreadable files
are skipped with one warning.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.errors import BenchError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Decoded:
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    skipped: tuple[str, ...]


def class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise BenchError(f"image folder {root} does not exist; pass --data with a folder "
                         "holding one subfolder per class (or train/ and test/)")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise BenchError(f"{root} has {len(classes)} class subfolder(s); a classification "
                         "dataset needs at least two (one subfolder per class)")
    return classes


def list_images(classes: list[Path]) -> list[tuple[Path, int]]:
    files = []
    for label, folder in enumerate(classes):
        mine = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS
                      and p.is_file())
        if not mine:
            raise BenchError(f"class folder {folder} holds no images "
                             f"({', '.join(sorted(EXTENSIONS))})")
        files += [(p, label) for p in mine]
    return files


def decode(path: Path, size: int) -> np.ndarray:
    """One image as uint8 RGB of ``size`` x ``size``; raises on anything unreadable."""
    with warnings.catch_warnings():
        # A decompression bomb is refused, not merely warned about.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float64)
                image = Image.fromarray((array / max(array.max(), 1) * 255).astype(np.uint8))
            image = image.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)


def cache_key(files: list[tuple[Path, int]], size: int) -> str:
    digest = hashlib.sha1(str(size).encode())
    for path, label in files:
        info = path.stat()
        digest.update(f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}|{label}\n".encode())
    return digest.hexdigest()[:20]


def load_folder(root: Path, *, size: int, cache_dir: Path | None,
                classes: list[str] | None = None, log=None) -> Decoded:
    """Decodes every image under ``root``'s class folders (cached); skips unreadable ones."""
    log = log or (lambda message: print(message, file=sys.stderr))
    folders = class_folders(root)
    if classes is not None and [f.name for f in folders] != classes:
        raise BenchError(f"{root} has classes {[f.name for f in folders]}, expected {classes}")
    files = list_images(folders)
    names = tuple(f.name for f in folders)
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / "decoded" / f"{cache_key(files, size)}.npz"
        if cache_file.exists():
            cached = np.load(cache_file)
            return Decoded(cached["images"], cached["labels"], names,
                           tuple(cached["skipped"].tolist()))
    images, labels, skipped = [], [], []
    for path, label in files:
        try:
            images.append(decode(path, size))
            labels.append(label)
        except Exception:  # noqa: BLE001 (any unreadable file is skipped, not fatal)
            skipped.append(str(path))
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        log(f"warning: skipped {len(skipped)} unreadable image file(s) under {root}: {shown}")
    labels = np.asarray(labels, dtype=np.int32)
    for label, name in enumerate(names):
        if not (labels == label).any():
            raise BenchError(f"class {name!r} under {root} has no readable image")
    decoded = Decoded(np.stack(images), labels, names, tuple(skipped))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.partial.npz")
        np.savez(partial, images=decoded.images, labels=decoded.labels,
                 skipped=np.asarray(decoded.skipped, dtype=str))
        os.replace(partial, cache_file)
    return decoded
