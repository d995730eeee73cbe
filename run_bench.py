#!/usr/bin/env python3
"""Benchmark fine-tuning choices with KerasTuner. ``python run_bench.py --help`` for usage."""

import sys

from bench.cli import command_line

if __name__ == "__main__":
    sys.exit(command_line())
