"""Safe downloads: a file is fetched, verified and unpacked without ever being half there.

Each step works on a temporary name beside the target: the archive downloads to a
``.partial`` file, its SHA-1 is checked, it is extracted into a temporary folder with
every member checked to land inside it (no ``..``, no absolute paths, no links), and only
then is the folder renamed into place. A failure at any step removes what that attempt
wrote, so the next attempt starts clean.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from bench.errors import BenchError


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file's bytes (``algorithm`` as ``hashlib.new`` names it)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress(done: int, total: int | None, stream) -> None:
    if total:
        stream.write(f"\r  {done / 1e6:.1f} / {total / 1e6:.1f} MB ({100 * done / total:.0f}%)")
    else:
        stream.write(f"\r  {done / 1e6:.1f} MB")
    stream.flush()


def fetch(url: str, target: Path, *, timeout: float = 60, stream=None) -> None:
    """Downloads ``url`` to ``target`` (a temporary name), with progress on ``stream``."""
    stream = stream or sys.stderr
    with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        done = 0
        while chunk := response.read(1 << 16):
            out.write(chunk)
            done += len(chunk)
            _progress(done, total, stream)
        stream.write("\n")
        if total is not None and done != total:
            raise OSError(f"the connection closed after {done} of {total} bytes")


def _safe_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = []
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        mode = info.external_attr >> 16
        if path.is_absolute() or ".." in path.parts or info.filename.startswith(("/", "\\")):
            raise BenchError(f"archive member {info.filename!r} would land outside the data "
                             "folder; the archive is not safe to extract")
        if stat.S_ISLNK(mode):
            raise BenchError(f"archive member {info.filename!r} is a link; the archive is not "
                             "safe to extract")
        members.append(info)
    return members


def _download(urls: list[str], *, to: Path, archive_name: str, how: str, stream) -> None:
    """Fetches the first of ``urls`` that answers into ``to``."""
    errors = []
    for url in urls:
        try:
            (stream or sys.stderr).write(f"downloading {url}\n")
            fetch(url, to, stream=stream)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            errors.append(f"{url}: {reason}")
            to.unlink(missing_ok=True)
    raise BenchError(f"could not download {archive_name} ({'; '.join(errors)}); {how}")


def _extract(archive: Path, *, to: Path, archive_name: str, how: str) -> None:
    """Extracts ``archive`` into ``to``, refusing members that would land outside it."""
    try:
        with zipfile.ZipFile(archive) as opened:
            try:
                members = _safe_members(opened)
            except BenchError as unsafe:
                raise BenchError(f"{archive_name}: {unsafe}; {how}") from None
            opened.extractall(to, members=members)
    except zipfile.BadZipFile as error:
        raise BenchError(f"{archive_name} is not a valid zip archive ({error}); {how}") \
            from None


def download_and_extract(*, urls: list[str], sha1: str, archive_name: str, data_dir: Path,
                         folder: str, stream=None) -> Path:
    """Makes ``data_dir/folder`` from a verified zip archive; returns its path.

    Nothing is downloaded when ``data_dir/folder`` exists. An archive already at
    ``data_dir/archive_name`` (placed by hand) is used instead of downloading.

    Raises:
        BenchError: a refused or broken connection, a checksum mismatch or an unsafe
            archive, with the address and where to put the file by hand.
    """
    data_dir = Path(data_dir)
    final = data_dir / folder
    if final.is_dir():
        return final
    data_dir.mkdir(parents=True, exist_ok=True)
    by_hand = data_dir / archive_name
    # Not "--data": that is for --dataset folder, whose splits differ from this dataset's.
    by_extracting = f"unzip it yourself into {data_dir} (making {final})"
    how = (f"download {archive_name} yourself from {urls[0]} and put it at {by_hand}, or "
           f"{by_extracting}")
    partial = data_dir / f".{archive_name}.{os.getpid()}.partial"
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".partial", dir=data_dir))
    try:
        if by_hand.exists():
            archive = by_hand
            # The file is the user's: what is wrong is that file, and it is theirs to
            # replace or remove (a download would never overwrite it).
            archive_name = f"{by_hand} (found there, so not downloaded)"
            how = (f"replace it with {by_hand.name} from {urls[0]}, or remove it so that "
                   f"the next run downloads it, or {by_extracting}")
        else:
            _download(urls, to=partial, archive_name=archive_name, how=how, stream=stream)
            archive = partial
        actual = file_digest(archive, "sha1")
        if actual != sha1:
            raise BenchError(f"{archive_name} has SHA-1 {actual}, expected {sha1} (a truncated "
                             f"or different file); {how}")
        _extract(archive, to=staging, archive_name=archive_name, how=how)
        extracted = staging / folder
        if not extracted.is_dir():
            raise BenchError(f"{archive_name} holds no {folder}/ folder; {how}")
        os.replace(extracted, final)
        return final
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
