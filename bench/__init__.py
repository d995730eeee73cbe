"""finetune-bench: measure fine-tuning choices with KerasTuner.

The package is import-safe: importing it does no work, touches no files and does not
import a Keras backend. Entry points live in :mod:`bench.cli`.
"""

__version__ = "0.1.0"
