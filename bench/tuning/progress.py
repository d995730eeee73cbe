"""Progress on the terminal: trial i of N, repeat, epoch, and the best score so far."""

from __future__ import annotations

import sys
import time

from bench.analysis.formatting import format_values


class Progress:
    """Prints one line per finished repeat; on a terminal, the epoch ticks in place."""

    def __init__(self, *, total_trials: int | None, repeats: int, epochs: int, stream=None,
                 done: int = 0, kept_seconds: float | None = None, worker: bool = False):
        self.total = total_trials
        self.repeats = repeats
        self.epochs = epochs
        self.stream = stream or sys.stdout
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.best: tuple[float, str] | None = None
        self.trial_number = self.done = done  # trials already run (a resumed run)
        self.kept_seconds = kept_seconds  # their time; None: not a resumed run
        self.started = time.perf_counter()
        self._label = self._values = ""
        # A worker sees its own trials only; the chief's tables hold them all.
        self._best = "this worker's best so far" if worker else "best so far"
        self._count = "this worker's trial" if worker else "trial"

    def trial_begin(self, trial_id: str, values: dict) -> None:
        self.trial_number += 1
        of = f"/{self.total}" if self.total else ""
        self._values = format_values(values)
        self._label = f"{self._count} {self.trial_number}{of} (id {trial_id}) [{self._values}]"

    def epoch_end(self, row: dict) -> None:
        if self.live:
            self.stream.write(
                f"\r  {self._label} repeat {row['repeat']}/{self.repeats} "
                f"epoch {row['epoch']}: val_accuracy {row['val_accuracy']:.3f}\033[K"
            )
            self.stream.flush()

    def repeat_end(self, *, repeat: int, final: float, best_epoch: int, seconds: float,
                   epochs: int | None = None, planned: int | None = None) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        # Found by a new user: an execution a space's early stopping ended at epoch 2 of
        # 4 read as if it had trained all 4.
        stopped = (f"at epoch {epochs} of {planned}, stopped early; "
                   if epochs is not None and planned is not None and epochs < planned else "")
        self.stream.write(
            f"  {self._label} repeat {repeat}/{self.repeats}: final val_accuracy {final:.3f} "
            f"({stopped}best at epoch {best_epoch}) in {seconds:.1f} s\n"
        )
        self.stream.flush()

    def note(self, message: str) -> None:
        """A line between trials (a skipped duplicate, a tuner notice), or one within a
        trial (a worker's chief went silent), which replaces the epoch ticking in place."""
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(f"  {message}\n")
        self.stream.flush()

    def scored(self, trial_id: str, score: float) -> None:
        """Counts ``score`` towards the best so far (a resumed run's kept trials too)."""
        if self.best is None or score > self.best[0]:
            self.best = (score, trial_id)

    def _elapsed(self) -> str:
        # Found by a new user: after --resume the time began again from 0 with no word.
        elapsed = f"{time.perf_counter() - self.started:.0f} s elapsed"
        if self.kept_seconds is None:
            return elapsed
        kept = (f"the {self.done} trial(s) kept took {self.kept_seconds:.0f} s"
                if self.done else "no trial had ended")
        return f"{elapsed} since the resume ({kept})"

    def trial_end(self, trial_id: str, status: str, score: float | None,
                  note: str = "") -> None:
        if score is not None:
            self.scored(trial_id, score)
        best = (f"{self._best} {self.best[0]:.3f} (trial {self.best[1]})"
                if self.best else "no completed trial yet")
        shown = f"{score:.3f}" if score is not None else "-"
        why = f" ({note})" if note else ""
        if status != "COMPLETED" and self._values:
            why += f" [{self._values}]"  # it may have printed no repeat line naming them
        self.stream.write(f"  -> trial {trial_id} {status.lower()}{why}: objective {shown}; "
                          f"{best}; {self._elapsed()}\n")
        self.stream.flush()
