"""Tuning: the hypermodel, KerasTuner's algorithms by name, the tuner that runs every
trial as seeded repeats, its per-epoch recording and progress, the pre-flight check, the
fast paths (model reuse, the frozen-prefix cache) and resume."""
