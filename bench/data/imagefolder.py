"""Image folders: decode once with Pillow, cache as uint8 arrays.

A folder given here holds one subfolder per class; every image below a class folder,
in nested folders too, belongs to that class. An image is a file whose extension names a
format Pillow opens (``image_extensions``); other files are not read, and the run's data
notes count them. Symbolic links (to files or folders) are
followed when they stay inside the folder and refused, with their paths, when they
leave it. Images are turned upright (EXIF orientation), converted to RGB (grayscale,
RGBA, palette and 16-bit alike; 16-bit values are scaled from 0-65535) and resized.
Files that decode to identical pixels (the same bytes, or the same picture saved again
in another format) are one image: the first in path order is kept. Unreadable files,
broken links and images with floating-point or 32-bit integer pixels (no agreed range)
are skipped and reported on every load, the cached ones too.

The decoded arrays are cached under a key made from the files' paths, sizes,
modification and change times, so a second run decodes nothing. A cache entry carries a SHA-256
of its arrays; one that does not load or verify is decoded again, with one line saying
why.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import unicodedata
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.data.arraycache import read_arrays, to_stderr, write_arrays
from bench.data.layouts import FOLDER_LAYOUT
from bench.errors import BenchError


@functools.cache
def image_extensions() -> frozenset[str]:
    """The extensions of the formats this Pillow decodes (.jpg, .png, .webp, .avif, .jp2,
    .tga...), lower case: a fixed list left photos in newer formats out unsaid. Formats
    Pillow only recognises are left out (its stubs for HDF5, GRIB, BUFR and WMF, MPEG,
    and EPS without Ghostscript): a model.h5 or a video beside the photos is no image."""
    from PIL import EpsImagePlugin, ImageFile

    Image.init()
    decodes = {kind for kind, (factory, _) in Image.OPEN.items()
               if not (isinstance(factory, type)
                       and issubclass(factory, ImageFile.StubImageFile))
               and kind != "MPEG" and (kind != "EPS" or EpsImagePlugin.has_ghostscript())}
    return frozenset(ext.lower() for ext, kind in Image.registered_extensions().items()
                     if kind in decodes)


def is_image_file(name: str) -> bool:
    return Path(name).suffix.lower() in image_extensions() and not hidden(name)

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


@dataclass(frozen=True)
class Decoded:
    """The readable images under a folder, one per distinct file content.

    Attributes:
        images: uint8, ``(n, size, size, 3)``.
        labels: int32 indices into ``class_names``.
        class_names: The class folders' names (in Unicode's composed form, NFC), sorted.
        skipped: Paths of files that could not be decoded.
        hashes: SHA-256 of each kept image's picture (``decode``), aligned with
            ``labels``: what finds the same picture in two splits.
        paths: Each kept image's file, relative to the folder, aligned with ``labels``.
        duplicates: How many files were dropped for repeating an earlier file's picture.
        repeats: Those of them under the class of the copy kept, as ``"dropped file
            repeats kept file"``.
        other_class: Those of them under another class than the copy kept, as
            ``"dropped file (its class) repeats kept file (its class)"`` (a picture filed
            under two classes keeps the first class in path order).
        dropped_per_class: How many files filed under each class (aligned with
            ``class_names``) were dropped for repeating a picture, so that a class left
            too small can say where its files went.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    skipped: tuple[str, ...]
    hashes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    duplicates: int = 0
    other_class: tuple[str, ...] = ()
    repeats: tuple[str, ...] = ()
    dropped_per_class: tuple[int, ...] = ()
    #: Files below the class folders that are not images (``is_image_file``) and were
    #: not read, relative to the folder.
    not_images: tuple[str, ...] = ()


def class_name(folder: Path) -> str:
    """A class folder's name in Unicode's composed form (NFC): macOS writes "café"
    decomposed, other systems composed, and a split copied from one to the other must
    keep its labels."""
    return unicodedata.normalize("NFC", folder.name)


def hidden(name: str) -> bool:
    """A file or folder no one means as data: its name starts with "." (``.DS_Store``,
    macOS's ``._photo.jpg`` beside every file it copies, ``.thumbnails/``) or it is the
    ``__MACOSX/`` folder a macOS zip carries."""
    return name.startswith(".") or name == "__MACOSX"


def loose_images(folder: Path) -> list[str]:
    """The names of the image files directly in ``folder`` (in no class folder), sorted."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and is_image_file(p.name))


def class_folders(root: Path, expected: list[str] | None = None) -> list[Path]:
    """The class subfolders of ``root``, sorted; with ``expected``, exactly those names."""
    if not root.is_dir():
        raise BenchError(f"image folder {root} does not exist; pass --data with "
                         f"{FOLDER_LAYOUT}")
    classes = sorted((p for p in root.iterdir() if p.is_dir() and not hidden(p.name)),
                     key=class_name)
    names = [class_name(p) for p in classes]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BenchError(f"{root} has two class folders named {twice[0]!r}, written in two "
                         "Unicode forms (composed and decomposed): merge them into one")
    if expected is not None and names != expected:
        missing, extra = sorted(set(expected) - set(names)), sorted(set(names) - set(expected))
        said = "; ".join([*([f"lacks {', '.join(missing)}"] if missing else []),
                          *([f"has {', '.join(extra)} besides"] if extra else [])])
        raise BenchError(f"{root} has the classes {names}, where train/ has {expected} "
                         f"({said}); every split folder holds the same "
                         "class subfolders")
    if len(classes) < 2:
        loose = len(loose_images(root))
        beside = (f" ({loose} image file(s) lie in it directly, outside any class subfolder: "
                  "they are not read)" if loose else "")
        raise BenchError(f"{root} has {len(classes)} class subfolder(s){beside}; a "
                         "classification dataset needs at least two (one subfolder per class)")
    return classes


def _folders(folder: Path):
    """``os.walk`` of ``folder`` following links, each real folder once, hidden ones left
    out; a caller may remove more of ``dirs`` before the walk goes on."""
    seen = set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        # Sorted in place, so the walk (and which of two paths to one folder is kept)
        # does not depend on the order the file system lists entries in.
        dirs.sort()
        real = os.path.realpath(top)
        if real in seen:  # a link back to a folder already walked
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [name for name in dirs if not hidden(name)]
        yield top, dirs, names


def _walk(folder: Path, inside: Path, outside: list[str], others: list[Path]) -> list[Path]:
    """Image files below ``folder``, following links that stay under ``inside``; links
    that leave it are appended to ``outside``, files that are not images to ``others``."""
    found = []
    for top, dirs, names in _folders(folder):
        for name in list(dirs):
            path = Path(top) / name
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(inside):
                outside.append(str(path))
                dirs.remove(name)
        for name in names:
            path = Path(top) / name
            if hidden(name):
                continue
            if not is_image_file(name):
                others.append(path)
                continue
            if not Path(os.path.realpath(path)).is_relative_to(inside):
                outside.append(str(path))
            elif path.is_file() or path.is_symlink():  # a broken link: skipped, reported
                found.append(path)
    return sorted(found)


def no_images(folder: Path) -> str:
    return (f"class folder {folder} holds no images (files of a format Pillow opens, such "
            "as .jpg, .png, .webp or .tif)")


def has_image_name(folder: Path) -> bool:
    """Whether a file below ``folder`` is named as an image (hidden ones aside): the
    names only, up to the first such file, so cheap enough before Keras loads."""
    return any(is_image_file(name) for _, _, names in _folders(folder) for name in names)


def list_images(classes: list[Path], root: Path | None = None, *,
                others: list[Path] | None = None) -> list[tuple[Path, int]]:
    """``(path, label)`` for every image under the class folders; the files that are not
    images are appended to ``others`` where given.

    Raises:
        BenchError: when a class folder holds no image, or a symbolic link leads out of
            ``root`` (default: the class folders' parent), naming the first few.
    """
    inside = Path(os.path.realpath(root if root is not None else classes[0].parent))
    files, outside = [], []
    others = [] if others is None else others
    for label, folder in enumerate(classes):
        if not Path(os.path.realpath(folder)).is_relative_to(inside):
            outside.append(str(folder))
            continue
        mine = _walk(folder, inside, outside, others)
        if not mine and not outside:
            raise BenchError(no_images(folder))
        files += [(p, label) for p in mine]
    if outside:
        raise BenchError(f"{len(outside)} symbolic link(s) under {inside} lead outside it: "
                         f"{some(outside)}; copy those images into the folder or remove the links")
    return files


def decode(path: Path, size: int) -> tuple[np.ndarray, str]:
    """One image as uint8 RGB of ``size`` x ``size``, and a SHA-256 of its picture (upright
    RGB at its own size: what two copies of one picture share whatever their format or
    metadata, and two different pictures do not, whatever ``size``). Raises on anything
    unreadable."""
    with warnings.catch_warnings():
        # Pillow warns from MAX_IMAGE_PIXELS (about 89 megapixels: a 100-megapixel photo)
        # and refuses from twice that: the refusal is the limit, its warning only noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            if image.mode == "I" and 32 in getattr(image, "tag_v2", {}).get(258, ()):
                # A 32-bit integer TIFF: its values may span 0-255, 0-65535 or any other
                # range. (Pillow reads 16-bit PNGs and PGMs as "I" too, scaled to 0-65535.)
                raise ValueError("32-bit integer pixels have no agreed range")
            image = ImageOps.exif_transpose(image)
            if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
                # A fixed scale, as an 8-bit copy of the picture would be: mid-grey 32768
                # is 128 whatever the image's brightest pixel.
                array = np.asarray(image, dtype=np.float64)
                if array.min() < 0 or array.max() > 65535:
                    raise ValueError(f"{image.mode} pixels outside 0-65535")
                image = Image.fromarray(np.rint(array * (255 / 65535)).astype(np.uint8))
            elif image.mode == "F":
                raise ValueError("floating-point pixels have no agreed range")
            image = image.convert("RGB")
            picture = hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()
            image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8), picture


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, where the system says."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(count: int, size: int, *, what: str, available: int | None = None) -> None:
    """Refuses to make ``count`` images of ``size`` px when they cannot fit in memory.

    Twice the arrays' size is counted: the decoded images and the stacked array (or the
    splits cut from it) exist together for a moment.
    """
    needed = 2 * count * size * size * 3
    available = available_memory() if available is None else available
    if available is not None and needed > available:
        raise BenchError(f"{what}: {count} images at {size}x{size} px need about "
                         f"{needed / 2**30:.1f} GiB of memory and {available / 2**30:.1f} GiB "
                         "is available; use a smaller --image-size or fewer images")


def cache_key(files: list[tuple[Path, int]], size: int) -> str:
    """The files (path, size, modification and change times, label), the size, and what
    decodes: Pillow's version and this module's code. The change time is there because
    ``cp -p`` and ``rsync -a`` copy another file's modification time, never its change
    time."""
    import sys

    import PIL

    from bench.device import code_sha256

    decoder = f"Pillow {PIL.__version__} {code_sha256(sys.modules[__name__])}"
    digest = hashlib.sha1(f"{size}|{decoder}\n".encode())
    for path, label in files:
        try:
            info = path.stat()
            state = f"{info.st_size}|{info.st_mtime_ns}|{info.st_ctime_ns}"
        except OSError:  # a broken link or a link loop: skipped when decoding
            state = "unreadable"
        digest.update(f"{os.path.realpath(path)}|{state}|{label}\n".encode())
    return digest.hexdigest()[:20]


def _read_cache(cache_file: Path, names: tuple[str, ...], log) -> Decoded | None:
    """The cached decode, or None (with one line saying why) when it does not verify."""
    arrays = read_arrays(cache_file, what="decoded-image", redo="decoding again", log=log)
    if arrays is None:
        return None
    try:
        decoded = Decoded(arrays["images"], arrays["labels"], names,
                          tuple(arrays["skipped"].tolist()), tuple(arrays["hashes"].tolist()),
                          tuple(arrays["paths"].tolist()), int(arrays["duplicates"]),
                          tuple(arrays["other_class"].tolist()),
                          tuple(arrays["repeats"].tolist()),
                          tuple(int(n) for n in arrays["dropped_per_class"].tolist()))
    except (KeyError, TypeError, ValueError) as error:  # verified, but not a decode's arrays
        log(f"decoded-image cache {cache_file} is unreadable ({type(error).__name__}); "
            "decoding again")
        return None
    if not len(decoded.hashes) == len(decoded.paths) == len(decoded.labels):
        log(f"decoded-image cache {cache_file} failed its checksum; decoding again")
        return None
    return decoded


def _write_cache(cache_file: Path, decoded: Decoded, log) -> None:
    write_arrays(cache_file, what="decoded-image", log=log, arrays={
        "images": decoded.images, "labels": decoded.labels,
        "skipped": np.asarray(decoded.skipped, dtype=str),
        "hashes": np.asarray(decoded.hashes, dtype=str),
        "paths": np.asarray(decoded.paths, dtype=str),
        "duplicates": np.asarray(decoded.duplicates),
        "other_class": np.asarray(decoded.other_class, dtype=str),
        "repeats": np.asarray(decoded.repeats, dtype=str),
        "dropped_per_class": np.asarray(decoded.dropped_per_class, dtype=np.int64)})


def _decode_all(files: list[tuple[Path, int]], size: int, root: Path, names) -> Decoded:
    check_memory(len(files), size, what=f"decoding {root}")
    images, labels, hashes, paths, skipped = [], [], [], [], []
    # The file (relative to root) and label each file content and picture was first kept as.
    seen: dict[str, tuple[str, int]] = {}
    pictures: dict[str, tuple[str, int]] = {}
    duplicates, other_class, repeats = 0, [], []
    dropped = [0] * len(names)

    # Per class, its files that repeat a picture kept under another class, and its
    # unreadable files.
    elsewhere: dict[int, list[tuple[Path, str]]] = {}
    unreadable: dict[int, list[str]] = collections.defaultdict(list)

    def repeat(path: Path, where: str, label: int, kept: tuple[str, int]) -> None:
        nonlocal duplicates
        duplicates += 1
        dropped[label] += 1
        if kept[1] == label:
            repeats.append(f"{where} repeats {kept[0]}")
        else:
            other_class.append(f"{where} ({names[label]}) repeats {kept[0]} "
                               f"({names[kept[1]]})")
            elsewhere.setdefault(label, []).append((path, f"{where} repeats {kept[0]}"))

    for path, label in files:
        where = os.path.relpath(path, root)
        try:
            content = path.read_bytes()
        except OSError:
            skipped.append(str(path))
            unreadable[label].append(where)
            continue
        digest = hashlib.sha256(content).hexdigest()
        if digest in seen:
            repeat(path, where, label, seen[digest])
            continue
        try:
            image, picture = decode(path, size)
        except MemoryError:
            raise BenchError(_out_of_memory(path, size, decoded=len(images))) from None
        except Exception:  # noqa: BLE001 (any unreadable file is skipped, not fatal)
            skipped.append(str(path))
            unreadable[label].append(where)
            continue
        # A byte copy of this file repeats the file kept, not this one if it is dropped.
        seen[digest] = pictures.get(picture, (where, label))
        if picture in pictures:  # the same picture in another file (re-encoded, re-tagged)
            repeat(path, where, label, pictures[picture])
            continue
        pictures[picture] = (where, label)
        images.append(image)
        labels.append(label)
        hashes.append(picture)
        paths.append(where)
    labels = np.asarray(labels, dtype=np.int32)
    for label, name in enumerate(names):
        if not (labels == label).any():
            raise BenchError(_no_image_of_its_own(name, root, elsewhere.get(label, []),
                                                  unreadable_files=unreadable[label]))
    try:
        stacked = np.stack(images)
    except MemoryError:
        raise BenchError(f"not enough memory to hold {len(images)} images of {size}x{size} "
                         f"px from {root}; use a smaller --image-size") from None
    return Decoded(stacked, labels, names, tuple(skipped), tuple(hashes), tuple(paths),
                   duplicates, tuple(other_class), tuple(repeats), tuple(dropped))


def _out_of_memory(path: Path, size: int, *, decoded: int) -> str:
    """What to do when decoding ``path`` ran out of memory: an image is decoded at its own
    size before it is resized, so a huge one is the cause whatever ``--image-size``."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 (only a detail of the message)
        width = height = None
    own = f" ({width}x{height} px, decoded at that size before resizing)" if width else ""
    return (f"ran out of memory decoding {path}{own} after {decoded} images at {size}x{size} "
            "px: shrink or remove that image, or use a smaller --image-size or fewer images")


def _no_image_of_its_own(name: str, root: Path, repeats: list[tuple[Path, str]], *,
                         unreadable_files: list[str]) -> str:
    """Why a class kept no image: every file unreadable (``unreadable_files``, relative
    to ``root``), or (some) repeating other classes' pictures, with a hint where those
    files are transparent."""
    unreadable = len(unreadable_files)
    if not repeats:
        # Found by a new user: the files were not named (the skipped-files warning comes
        # after decoding, which this stops).
        return (f"class {name!r} under {root} has no readable image: its {unreadable} "
                f"file(s) could not be read or decoded as images ({some(unreadable_files)})"
                "; replace them with images Pillow can open, or remove the class")
    message = (f"class {name!r} under {root} has no picture of its own: {len(repeats)} of its "
               f"{len(repeats) + unreadable} file(s) repeat a picture kept under another "
               "class (the same bytes, or the same pixels)"
               + (f" and {unreadable} {'is' if unreadable == 1 else 'are'} unreadable"
                  if unreadable else "")
               + f" ({some([r for _, r in repeats], sep='; ')})")
    if any(_transparent(path) for path, _ in repeats[:20]):
        message += ("; its images have transparent pixels, and the alpha channel is not "
                    "read: pictures drawn only in transparency read as the same colour square")
    return message + "; check the class folders' contents"


def _transparent(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            if image.mode not in ("RGBA", "LA", "PA", "La", "RGBa") \
                    and "transparency" not in image.info:
                return False
            return image.convert("RGBA").getchannel("A").getextrema()[0] < 255
    except Exception:  # noqa: BLE001 (only a hint)
        return False


def load_folder(root: Path, *, size: int, cache_dir: Path | None,
                classes: list[str] | None = None, log=None) -> Decoded:
    """Decodes every distinct image under ``root``'s class folders (cached).

    Unreadable files are skipped and reported with one line, on every call; files
    repeating an earlier file's picture are dropped and counted (``repeats_sentence``).
    """
    log = log or to_stderr
    folders = class_folders(root, classes)
    not_images: list[Path] = []
    files = list_images(folders, root, others=not_images)
    names = tuple(class_name(f) for f in folders)
    cache_file = None
    decoded = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / "decoded" / f"{cache_key(files, size)}.npz"
        decoded = _read_cache(cache_file, names, log)
    if decoded is None:
        decoded = _decode_all(files, size, root, names)
        if cache_file is not None:
            _write_cache(cache_file, decoded, log)
    if decoded.skipped:
        limit = (f", or more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's "
                 "decompression-bomb limit" if Image.MAX_IMAGE_PIXELS else "")
        log(f"warning: skipped {len(decoded.skipped)} unreadable image file(s) under {root} "
            "(not decodable, a broken link, floating-point or 32-bit integer pixels"
            f"{limit}): {some(decoded.skipped)}")
    return replace(decoded, not_images=tuple(sorted(os.path.relpath(path, root)
                                                     for path in not_images)))


def not_images_sentence(decoded: Decoded, root: Path) -> str | None:
    """What a folder held besides images, for the run's data notes; None if nothing."""
    if not decoded.not_images:
        return None
    return (f"{len(decoded.not_images)} file(s) under {root} are not of an image format "
            f"Pillow opens, by their extension, and were not read ({some(decoded.not_images)})")


def repeats_sentence(decoded: Decoded, root: Path) -> str | None:
    """What a folder's repeated pictures were, for the run's data notes; None if none."""
    if not decoded.duplicates:
        return None
    sentence = (f"{decoded.duplicates} file(s) under {root} repeat another file's picture "
                "(the same bytes, or the same pixels in another format) and were used once"
                + (f" ({some(decoded.repeats, sep='; ')})" if decoded.repeats else ""))
    if decoded.other_class:
        sentence += (f"; {len(decoded.other_class)} of them under another class than the "
                     "copy kept, which keeps the first class in path order: check those "
                     f"labels ({some(decoded.other_class, sep='; ')})")
    return sentence


def dropped_words(dropped_per_class: tuple[int, ...], label: int,
                  crossing_per_class: tuple[int, ...] = ()) -> str:
    """" (not counting 3 of its files that repeat ...)": a class's files dropped for
    repeating a picture of its folder (``dropped_per_class``) or of a later split
    (``crossing_per_class``), for a message that counts its images; "" when none were."""
    def count(per_class: tuple[int, ...]) -> int:
        return per_class[label] if label < len(per_class) else 0

    repeats, crossing = count(dropped_per_class), count(crossing_per_class)
    reasons = ([f"{repeats} of its files that repeat a picture read before"] if repeats
               else [])
    if crossing:
        reasons.append(f"{crossing}{'' if repeats else ' of its files'} that repeat a "
                       "picture of a later split (train < validation < test)")
    return (f" (not counting {' and '.join(reasons)}: each picture is used once)"
            if reasons else "")


def some(items, *, sep: str = ", ", shown: int = 3) -> str:
    """The first ``shown`` of ``items``, joined by ``sep``, with "..." when there are more."""
    return sep.join(items[:shown]) + (f"{sep}..." if len(items) > shown else "")
