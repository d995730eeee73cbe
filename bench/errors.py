"""The one exception type for user mistakes; the command line turns it into exit status 2."""


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
