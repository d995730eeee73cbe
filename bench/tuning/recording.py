"""Per-epoch rows: a Keras callback appends one row per trial x repeat x epoch as it ends.

KerasTuner keeps only each trial's best epoch; the curves exist only because this
callback writes every epoch of every execution. Rows are appended and flushed at once,
so a killed run keeps every finished epoch.
"""

from __future__ import annotations

import csv
import errno
import io
import math
import time
from pathlib import Path

import keras

from bench.errors import BenchError, DiskFull
from bench.stopping import raise_if_stopped

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
#: A trial whose training or validation loss stops being a finite number has failed. A
#: loss that is merely huge is a valid (bad) result and is kept.
WATCHED = ("loss", "val_loss")


def epoch_columns(hyperparameters: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    """The columns of ``epochs.csv`` for a space with these hyperparameters."""
    return (["run_id", "trial_id", "repeat", "seed", "epoch", *hyperparameters, *extra,
             "frozen_layers", "trainable_params", *METRICS, "epoch_seconds"])


class CsvAppender:
    """Appends whole rows to a CSV file with a fixed header.

    Each row is written with one unbuffered write. If that write fails (a full disk, a
    file-size limit), the file is cut back to its last complete row and ``DiskFull`` is
    raised, so the table never holds half a row and the original error is what the user
    sees.
    """

    def __init__(self, path: Path, columns: list[str]):
        self.path = Path(path)
        self.columns = columns
        self.rows_written = 0
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed by close())
        self._size = self._file.seek(0, io.SEEK_END)
        if new:
            self._write(_csv_line(columns))

    def append(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"columns not in the table: {sorted(unknown)}")
        self._write(_csv_line([row.get(c, "") for c in self.columns]))
        self.rows_written += 1

    def _write(self, line: str) -> None:
        data = (line + "\r\n").encode()
        try:
            written = self._file.write(data)
            if written != len(data):
                # The system took part of the row: the disk is full or a size limit hit.
                raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes written")
        except OSError as error:
            self._file.truncate(self._size)
            raise DiskFull(self.path, rows=self.rows_written, error=error) from error
        self._size += len(data)

    def close(self) -> None:
        self._file.close()


def whole_rows(path: Path) -> tuple[str, list[tuple[list[str], str]]]:
    """The header line of a table written by ``CsvAppender`` and its whole rows, each as
    (cells, line); a row torn by a kill or a full disk (no line end, too few cells) is
    left out. ("", []) for an empty file."""
    with open(path, newline="", encoding="utf-8") as file:
        lines = file.read().splitlines(keepends=True)
    if not lines:
        return "", []
    width = len(next(csv.reader([lines[0]])))
    rows = []
    for line in lines[1:]:
        cells = next(csv.reader([line]), [])
        if line.endswith("\n") and len(cells) == width:
            rows.append((cells, line))
    return lines[0], rows


def _csv_line(values: list) -> str:
    # NaN as an empty cell, as pandas writes trials.csv: "nan" would read as a value.
    values = ["" if isinstance(v, float) and math.isnan(v) else v for v in values]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


class EpochRecorder(keras.callbacks.Callback):
    """Writes one row per epoch; ``set`` changes extra columns (such as ``phase``) mid-run.

    Args:
        table: Where rows go as they are made (None: only into ``rows``).
        fixed: Values that hold for the whole execution (run, trial, repeat, seed and
            the hyperparameters).
        parts: The ``FineTuneModel``, read at every epoch because a schedule may freeze
            or unfreeze blocks between phases.
        on_epoch: Called with each row after it is written (progress display).
    """

    def __init__(self, table: CsvAppender | None, *, fixed: dict, parts, on_epoch=None,
                 settable: tuple[str, ...] = ()):
        super().__init__()
        self.table = table
        self.settable = settable
        self.fixed = dict(fixed)
        self.parts = parts
        self.on_epoch = on_epoch
        self.rows: list[dict] = []
        #: Why training stopped early: "loss became nan at epoch 3", or None.
        self.failure: str | None = None
        self._start = 0.0

    def set(self, **values) -> None:
        """Fills the space's own columns (``epoch_columns``) of the rows to come; the
        suite's columns (trial, seed, hyperparameters, metrics) are not a hook's to set."""
        unknown = [name for name in values if name not in self.settable]
        if unknown:
            raise BenchError(
                f"recorder.set({unknown[0]}=...): {unknown[0]!r} is not one of the space's "
                f"epoch_columns {tuple(self.settable)}; a fit hook fills only those: name a "
                f"new column there (epoch_columns = ({unknown[0]!r},))")
        self.fixed.update(values)

    def on_epoch_begin(self, epoch, logs=None):
        raise_if_stopped()
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {
            **self.fixed,
            "epoch": epoch + 1,
            "frozen_layers": self.parts.frozen_layers,
            "trainable_params": self.parts.trainable_params,
            **{name: float(logs[name]) if name in logs else "" for name in METRICS},
            "epoch_seconds": round(time.perf_counter() - self._start, 4),
        }
        last = self.rows[-1]["epoch"] if self.rows else 0
        if self.table is not None:
            self.table.append(row)
        self.rows.append(row)
        broken = [name for name in WATCHED if name in logs and not math.isfinite(row[name])]
        if broken and self.failure is None:
            self.failure = f"{broken[0]} became {row[broken[0]]} at epoch {epoch + 1}"
            self.model.stop_training = True
        if epoch + 1 <= last and self.failure is None:
            # A second run.fit without initial_epoch numbers its epochs from 1 again: the
            # curves and the "final" epoch would mix the two fits.
            self.failure = (f"epoch {epoch + 1} was recorded after epoch {last}: a fit that "
                            f"continues training must pass initial_epoch={last}")
            self.model.stop_training = True
        if self.on_epoch is not None:
            self.on_epoch(row)
