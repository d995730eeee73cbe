"""``python -m bench``: the same command line as ``run_bench.py`` and ``finetune-bench``."""

import sys

from bench.cli import command_line

if __name__ == "__main__":
    sys.exit(command_line())
