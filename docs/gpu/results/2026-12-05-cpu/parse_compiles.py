"""Sums a run's XLA compilations from its console log (the run under JAX_LOG_COMPILES=1).

Prints, for each compiled step (train_step, test_step, predict_step), the shapes of its
last two arguments (the batch it was traced for), then the count and seconds of
compilation per function. Usage: python parse_compiles.py LOG
"""
import re
import sys
from collections import Counter

seconds, count = Counter(), Counter()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    finished = re.search(r"Finished XLA compilation of jit\((\w+)\) in ([0-9.e-]+) sec", line)
    if finished:
        seconds[finished.group(1)] += float(finished.group(2))
        count[finished.group(1)] += 1
    traced = re.search(r"Compiling jit\((\w+)\) with global shapes and types \((.*)\)\. Arg",
                       line)
    if traced and traced.group(1) in ("train_step", "test_step", "predict_step"):
        shapes = re.findall(r"ShapedArray\(([^)]*)\)", traced.group(2))
        print(traced.group(1), shapes[-2:])
for name, total in seconds.most_common(12):
    print(f"{name:25s} {count[name]:3d} {total:7.2f} s")
