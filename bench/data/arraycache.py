"""Arrays kept on disk between runs and verified on every read.

One ``.npz`` per entry, written whole or not at all (a partial file, then a rename), with
a SHA-256 of its arrays stored beside them. A file that does not load or does not verify
is reported with one line and treated as missing, so the caller makes the arrays again:
a damaged cache costs time, never a wrong number.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from bench.files import write_whole

_CHECKSUM = "sha256"


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}{array.shape}|".encode())
        digest.update(array.data)
    return digest.hexdigest()


def write_arrays(path: Path, arrays: dict[str, np.ndarray], *, what: str, log) -> None:
    """Stores ``arrays`` at ``path``. A cache is optional: one that cannot be written (a
    full disk, a file where its folder should be) is said in one line and left out."""
    checksum = {_CHECKSUM: np.asarray(arrays_sha256(arrays))}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, lambda partial: np.savez(partial, **arrays, **checksum),
                    partial=path.with_name(f"{path.stem}.{os.getpid()}.partial.npz"))
    except OSError as error:
        log(f"{what} cache {path} could not be written "
            f"({error.strerror or type(error).__name__}); going on without it")


def read_arrays(path: Path, *, what: str, redo: str, log) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path``, or None: when there are none, or (with one line to
    ``log``: "WHAT cache PATH failed its checksum; REDO") when they do not verify."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files if name != _CHECKSUM}
            expected = str(stored[_CHECKSUM])
    except Exception as error:  # noqa: BLE001 (a truncated zip fails in many ways)
        log(f"{what} cache {path} is unreadable ({type(error).__name__}); {redo}")
        return None
    if arrays_sha256(arrays) != expected:
        log(f"{what} cache {path} failed its checksum; {redo}")
        return None
    return arrays
