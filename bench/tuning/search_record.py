"""What ``run.json`` records of a search: the notes on what ran otherwise than asked (a fast
path off, evaluation at the training batch size), and the counts of compiled models,
executions trained together, frozen-prefix features and evaluations in larger batches.

A single process records its own. A worker keeps its record in
``workers/NAME/search.json``, written after every trial (a worker restarted after a kill
adds to it), and the chief adds the workers' records up into ``run.json``, so a run's
report says what its workers found as a one-process run's says what it found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

#: The record's counts, each a dict of counters that add up across processes.
COUNTS = ("models", "together", "prefix_cache", "evaluation")


def search_record(tuner, prefix) -> dict:
    """The record of ``tuner``'s search so far; ``prefix`` is its cache (None when off)."""
    models = tuner.models
    record = {"notes": [*tuner.notes, *models.notes],
              "models": {"compiled": models.built, "reused": models.reused,
                         "states_reused": models.states_reused,
                         "from_preflight": models.adopted},
              "together": {"trials": tuner.together.trials,
                           "retried_alone": tuner.together.retried},
              "evaluation": {"larger_batches": tuner.large_evaluations,
                             "larger_tests_only": tuner.large_tests_only},
              "device_data": tuner.device_data}
    if prefix is not None:
        record["prefix_cache"] = {"executions": prefix.used,
                                  "features_computed": prefix.computed,
                                  "features_reused": prefix.hits}
    return record


def combined(records: list[dict]) -> dict:
    """Several processes' records as one: counts added up, notes once each in the order
    first said, ``device_data`` where any process put its data on the device."""
    total: dict = {"notes": []}
    for record in records:
        add_notes(total, record.get("notes", []))
        for key in COUNTS:
            if key in record:
                counts = total.setdefault(key, {})
                for name, value in record[key].items():
                    counts[name] = counts.get(name, 0) + value
        if "device_data" in record:
            total["device_data"] = total.get("device_data", False) or record["device_data"]
    return total


def add_notes(record: dict, notes: list[str]) -> None:
    """Appends to ``record["notes"]`` the notes it does not have yet (a resumed process, or
    a second worker, says what an earlier one said)."""
    said = record.setdefault("notes", [])
    said += [note for note in dict.fromkeys(notes) if note not in said]


#: A worker's record, in its folder ``workers/NAME/``.
WORKER_RECORD = "search.json"


def worker_records(run_path: Path) -> list[dict]:
    """The records the workers of a run have written, in worker order (tuner2 before
    tuner10)."""
    paths = Path(run_path).glob(f"workers/*/{WORKER_RECORD}")
    return [record for path in sorted(paths, key=lambda p: _natural(p.parent.name))
            for record in read_record(path)]


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_record(path: Path) -> list[dict]:
    """The record at ``path`` as a list of one, or none where there is none. Each is
    written whole under another name and renamed, so a kill leaves the last one; one
    damaged by other means (not of the shape ``search_record`` writes) is passed over
    rather than losing the run's own record."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    return [record] if _well_formed(record) else []


def _well_formed(record) -> bool:
    if not isinstance(record, dict):
        return False
    notes = record.get("notes", [])
    counts = [record.get(key, {}) for key in COUNTS]
    return (isinstance(notes, list) and all(isinstance(note, str) for note in notes)
            and all(isinstance(count, dict) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in count.values())
                for count in counts)
            and isinstance(record.get("device_data", False), bool))
