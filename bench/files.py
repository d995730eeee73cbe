"""Files written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_whole(path: Path, write, *, partial: Path | None = None) -> None:
    """Writes through ``write(partial)`` and renames it to ``path``, so a reader sees the
    old file or the new one, never half. A write that fails or is stopped (Ctrl-C,
    SIGTERM) removes its partial file and raises. ``partial`` defaults to
    ``path`` + ``.partial``."""
    partial = partial or path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass  # its folder is the problem: no partial file was made there
        raise
