#!/usr/bin/env bash
# Issue 10's GPU measurements as one call of the device tool (one H100 or H200, JAX, no
# network, no TensorFlow). Prepare here first, into .whl/: Keras, KerasTuner and what they
# import that such a machine lacks (found by importing the suite in a Python 3.12 venv
# holding JAX, numpy, pandas, seaborn, pillow, scikit-learn, h5py, filelock, jinja2, fsspec):
#   ../shared/gpu/wheels.sh absl-py==2.5.1 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 \
#       pygments==2.21.0 grpcio==1.85.3 protobuf==7.36.2 six==1.17.0 typing-extensions==4.16.0
# Then, with the device tool: command "bash docs/gpu/check.sh", carry [".whl"], timeout_s 600
# Steps (default: all four, in this order; name some to run only those):
#   study     the ResNet50V2 seed study at 224 px on 2,000 shapes images, 12 configurations
#             x 9 repeats = 108 executions of 5 epochs, as `perf`: the suite end to end, and
#             plain KerasTuner on 2 of the 9 executions per configuration, the rest
#             estimated (README "Speed": targets < 2 minutes and >= 20x)
#   memory    50 trials of docs/gpu/spaces/memory-50.py: RSS and device memory per trial
#   together  the default study with 5 repeats alone and --train-together: times, and
#             whether epochs.csv is the same
#   perf      the default study's perf (plain KerasTuner on 2 of 5 executions per
#             configuration)
# Each step has its own time limit and writes under $OUT as it goes, so a step that runs
# out of time still leaves what the steps before it measured; summary.json gathers the
# numbers. A dry run on a CPU: OUT=/tmp/gpu-check GPU_CHECK_SMALL=1 bash docs/gpu/check.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
steps=${*:-study memory together perf}

if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
fi
export KERAS_BACKEND=jax FINETUNE_BENCH_CACHE=${FINETUNE_BENCH_CACHE:-/tmp/gpu-check-cache}
runs=$OUT/runs
mkdir -p "$runs"

# The study's size; GPU_CHECK_SMALL shrinks every step to try the script on a CPU.
if [ -n "${GPU_CHECK_SMALL:-}" ]; then
    study=(--backbone resnet-mini --image-size 32 --images-per-class 40 --train-per-class 10
           --epochs 1 --repeats 3 --max-trials 2 --pretrain-epochs 1)
    memory_trials=12 default=(--epochs 1 --max-trials 2 --pretrain-epochs 1)
    together_repeats=2
else
    study=(--backbone resnet50v2 --image-size 224 --images-per-class 400
           --train-per-class 200 --epochs 5 --repeats 9)
    memory_trials=50 default=() together_repeats=5
fi

log() { echo "$(date -u +%FT%TZ) $*" | tee -a "$OUT/steps.txt"; }
step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2 started
    shift 2
    started=$(date +%s)
    log "start $name (limit ${limit} s): $*"
    timeout -s TERM -k 15 "$limit" "$@" > "$OUT/$name.log" 2>&1
    log "end $name: exit $? after $(( $(date +%s) - started )) s"
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c 'import json; from bench.device import describe_device, library_versions
print(json.dumps(describe_device() | {"versions": library_versions()}, indent=2))' \
    > "$OUT/device.json" 2>&1
log "device: $(tr -d '\n' < "$OUT/device.json" | head -c 300)"

for name in $steps; do
    case $name in
    study)
        step study 330 python3 run_bench.py perf --space seed --dataset shapes "${study[@]}" \
            --baseline-repeats 2 --results-dir "$runs" --name study ;;
    memory)
        step memory 90 python3 run_bench.py run --spaces-dir docs/gpu/spaces --space memory-50 \
            --tuner random --max-trials "$memory_trials" --results-dir "$runs" --name memory ;;
    together)
        step alone 75 python3 run_bench.py run "${default[@]}" --repeats "$together_repeats" \
            --results-dir "$runs" --name alone
        step together 75 python3 run_bench.py run "${default[@]}" --repeats "$together_repeats" \
            --train-together --results-dir "$runs" --name together ;;
    perf)
        step perf 150 python3 run_bench.py perf "${default[@]}" --baseline-repeats 2 \
            --results-dir "$runs" --name default-perf ;;
    *)
        log "unknown step $name (study, memory, together, perf)" ;;
    esac
done

python3 - "$runs" > "$OUT/summary.json" <<'EOF'
"""The numbers README's "Speed" needs, from whatever the steps left."""
import json
import sys
from pathlib import Path

import pandas as pd

runs, summary = Path(sys.argv[1]), {}
for name in ("study", "default-perf"):
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
tables = {name: runs / name / "epochs.csv" for name in ("alone", "together")}
if all(path.exists() for path in tables.values()):
    alone, together = (pd.read_csv(path) for path in tables.values())
    keys = ["trial_id", "repeat", "epoch"]
    merged = alone.merge(together, on=keys, suffixes=("_alone", "_together"))
    summary["together"] = {
        "rows": [len(alone), len(together), len(merged)],
        "max_abs_difference": {c: float((merged[f"{c}_alone"] - merged[f"{c}_together"]).abs().max())
                               for c in ("loss", "accuracy", "val_loss", "val_accuracy")},
        "search_seconds": {name: json.loads((runs / name / "run.json").read_text())
                           .get("search_seconds") for name in tables}}
print(json.dumps(summary, indent=2))
EOF
log "summary: $(tr -d '\n ' < "$OUT/summary.json" | head -c 600)"
