"""How the user started this command line, for the commands a message tells them to run."""

from __future__ import annotations

import sys
from pathlib import Path


def program() -> str:
    """The start of a command line that runs the suite as this process was started:
    ``python run_bench.py`` (the script's path where it is not in the current folder),
    ``python -m bench`` or ``finetune-bench``; ``python run_bench.py`` when unknown."""
    started = sys.argv[0] if sys.argv and sys.argv[0] else ""
    name = Path(started).name
    if name == "__main__.py" and Path(started).parent.name == "bench":
        return "python -m bench"
    if name == "finetune-bench":
        return "finetune-bench"
    if name == "run_bench.py" and Path(started).resolve() != Path("run_bench.py").resolve():
        return f"python {started}"
    return "python run_bench.py"


def command(arguments: str) -> str:
    """``program()`` followed by ``arguments``: a line the user can paste."""
    return f"{program()} {arguments}"
