"""The one exception type for user mistakes; the command line turns it into exit status 2."""

import errno


class BenchError(Exception):
    """A mistake the user can fix: an unknown name, missing data, a bad folder.

    The message says what went wrong and what to do about it, in one or two sentences.
    """


def unknown_name(kind: str, name: str, valid: list[str]) -> BenchError:
    """Builds the error for a name that is not in a registry, listing the valid names."""
    return BenchError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


class StudyFailed(Exception):
    """A study that started but could not finish (every trial failing, say).

    Its tables and report are written before it is raised; the command line prints the
    message on one line and exits with status 1.
    """

    #: Whether the same run continues once the cause is mended (a full disk); the command
    #: line then adds the command that continues it, which only it knows (run, a chief's
    #: run, a worker), with ``advised``.
    resumable = False
    #: Where in the message that command goes: after the failure's own words, before what
    #: ``also`` added (None: at the end).
    advice_at: int | None = None

    def also(self, later: str) -> "StudyFailed":
        """This failure with ``later`` (what else went wrong) added to its message."""
        wrapped = StudyFailed(f"{self}; {later}")
        wrapped.resumable = self.resumable
        wrapped.advice_at = len(str(self)) if self.advice_at is None else self.advice_at
        return wrapped

    def advised(self, then: str) -> str:
        """The message with ``then`` (", then continue the run with '...'") put where it
        belongs."""
        text = str(self)
        at = len(text) if self.advice_at is None else self.advice_at
        return text[:at] + then + text[at:]


class FailureLimit(StudyFailed):
    """KerasTuner's consecutive-failure limit stopped the search before its last trial.

    Not resumable: the failed trials stay failed, and KerasTuner's check, which scans
    every ended trial in order, would count them again when the next trial ends and stop.
    The run says so, and its report says why each trial failed.
    """

    @classmethod
    def at(cls, *, limit: int, trial_id: str, why: str) -> "FailureLimit":
        return cls(f"{limit} trials failed in a row, {cls.MARK}; the last (trial {trial_id}): "
                   f"{why}")

    #: In ``run.json``'s error, which is all that runs written before ``failure_limit``
    #: was recorded say of it.
    MARK = "KerasTuner's limit"


class DiskFull(StudyFailed):
    """A table or file could not be written: the disk is full or a file-size limit was hit.

    A table is left at its last complete row; a file written whole (``rows`` None) as it
    was. It stops the whole search (KerasTuner lets a ``FatalError`` through where it
    would fail one trial for anything else).
    """

    resumable = True

    #: In the message, and so in a worker's last line, which its local chief reads.
    MARK = "is full or a file-size limit was reached"

    @staticmethod
    def caused(error: OSError) -> bool:
        """Whether ``error`` is a full disk (or quota, or file-size limit)."""
        return isinstance(error, DiskFull) or error.errno in (errno.ENOSPC, errno.EFBIG,
                                                              errno.EDQUOT)

    def __init__(self, path, *, rows: int | None, error: OSError):
        self.path = path
        folder = getattr(path, "parent", path)
        #: The system's words for it ("No space left on device", "File too large").
        self.reason = error.strerror or str(error)
        written, kept = ((f" after {rows} row(s)", "every complete row is kept") if rows is not None
                         else ("", "any earlier version of the file is kept"))
        super().__init__(f"cannot write {path} ({self.reason}){written}: the disk holding "
                         f"{folder} {self.MARK}; {kept}: free some space")
