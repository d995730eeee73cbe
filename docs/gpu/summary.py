"""The numbers README's "Speed" needs, from whatever the steps left."""
import json
import sys
from pathlib import Path

import pandas as pd

runs, summary = Path(sys.argv[1]), {}
for name in ("study", "study-again", "study-mixed", "together-study"):
    study = runs / name / "run.json"
    if not study.exists():
        continue
    record = json.loads(study.read_text())
    summary[name] = {"data_seconds": record.get("dataset", {}).get("seconds"),
                     "pretraining_seconds": record.get("pretraining", {}).get("seconds"),
                     # True: the weights came from the cache (the seconds are of their run).
                     "pretraining_reused": record.get("pretraining", {}).get("reused"),
                     "preflight_seconds": record.get("preflight_seconds"),
                     "search_seconds": record.get("search_seconds"),
                     "models": record.get("models"), "together": record.get("together"),
                     "device": record.get("device")}
    epochs = runs / name / "epochs.csv"
    if epochs.exists():
        table = pd.read_csv(epochs)
        summary[name]["executions"] = len(table.groupby(["trial_id", "repeat"]))
        # Median seconds of an epoch at each depth: what the precision changes.
        summary[name]["epoch_seconds_by_depth"] = {
            int(depth): round(float(rows["epoch_seconds"].median()), 3)
            for depth, rows in table.groupby("frozen_blocks")}
for name in ("sample", "default-perf"):
    path = runs / name / "perf.json"
    suite = runs / name / "suite" / "run.json"
    if not path.exists() and suite.exists():
        # The step ran out of time during plain KerasTuner: the suite's side still counts.
        summary[name] = {"suite_search_seconds": json.loads(suite.read_text()).get(
            "search_seconds"), "plain": "not finished"}
    if path.exists():
        perf = json.loads(path.read_text())
        summary[name] = {key: perf.get(key) for key in (
            "speedup", "speedup_basis", "suite_wall_seconds", "suite_over_floor", "device",
            "backend")} | {"suite_search_seconds": perf["suite"]["search_seconds"],
                           "plain": perf["plain_kerastuner"]}
memory = runs / "memory" / "trials.csv"
if memory.exists():
    trials = pd.read_csv(memory)
    summary["memory"] = {"trials": len(trials)} | {
        f"{column}_after_trial_{n}": float(trials[column].iloc[n - 1])
        for column in ("rss_mib", "device_mib") for n in (10, len(trials)) if len(trials) >= n}

def _same(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Rows of two runs' epochs.csv, and their largest difference per metric."""
    keys = ["trial_id", "repeat", "epoch"]
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"))
    return {"rows": [len(a), len(b), len(merged)], "max_abs_difference": {
        c: float((merged[f"{c}_a"] - merged[f"{c}_b"]).abs().max())
        for c in ("loss", "accuracy", "val_loss", "val_accuracy")}}


device = {name: runs / name / "epochs.csv" for name in ("device-on", "device-off")}
for name, path in device.items():
    if path.exists():
        table = pd.read_csv(path)
        # Each depth's first execution compiles and computes the features: left out.
        later = table[table["repeat"] > 1]
        summary[name] = {
            "search_seconds": json.loads((runs / name / "run.json").read_text())
            .get("search_seconds"),
            "median_epoch_seconds_by_depth": {
                int(depth): float(seconds) for depth, seconds in
                later.groupby("frozen_blocks")["epoch_seconds"].median().items()}}
if all(path.exists() for path in device.values()):
    summary["device-data"] = _same(*(pd.read_csv(path) for path in device.values()))
tables = {name: runs / name / "epochs.csv" for name in ("alone", "together")}
if all(path.exists() for path in tables.values()):
    summary["together"] = _same(*(pd.read_csv(path) for path in tables.values())) | {
        "search_seconds": {name: json.loads((runs / name / "run.json").read_text())
                           .get("search_seconds") for name in tables}}
print(json.dumps(summary, indent=2))
