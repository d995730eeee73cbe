"""How the user started this command line, for the commands a message tells them to run."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path


def program() -> str:
    """The start of a command line that runs the suite as this process was started:
    ``python run_bench.py`` (the script's path where it is not in the current folder),
    ``python -m bench`` or ``finetune-bench``; ``python run_bench.py`` when unknown. A
    Keras backend chosen by ``KERAS_BACKEND`` comes first (``KERAS_BACKEND=jax python
    run_bench.py``): a run resumes only on its own backend, and without the variable
    Keras would take ``~/.keras/keras.json``'s."""
    backend = os.environ.get("KERAS_BACKEND", "")
    return (f"KERAS_BACKEND={quoted(backend)} " if backend else "") + started_as()


def started_as() -> str:
    """How this process was started (``program`` without the environment): the program
    name for ``--help`` and usage lines."""
    started = sys.argv[0] if sys.argv and sys.argv[0] else ""
    name = Path(started).name
    if name == "__main__.py" and Path(started).parent.name == "bench":
        return "python -m bench"
    if name == "finetune-bench":
        return "finetune-bench"
    if name == "run_bench.py" and Path(started).resolve() != Path("run_bench.py").resolve():
        return f"python {quoted(started)}"
    return "python run_bench.py"


def command(*words) -> str:
    """``program()`` followed by ``words`` (paths quoted for the shell where they need it):
    a line the user can paste."""
    return " ".join([program(), *(quoted(str(word)) for word in words)])


def quoted(word: str) -> str:
    """``word`` as one shell word; in double quotes, since messages put a whole command
    line in single quotes."""
    if shlex.quote(word) == word:
        return word
    return '"' + re.sub(r'([\\"$`])', r"\\\1", word) + '"'
