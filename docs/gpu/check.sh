#!/usr/bin/env bash
# Issue 10's GPU measurements as one call of the device tool (one H100 or H200, JAX, no
# network, no TensorFlow). Prepare here first, into .whl/: Keras, KerasTuner and what they
# import that such a machine lacks (found by importing the suite in a Python 3.12 venv
# holding JAX, numpy, pandas, seaborn, pillow, scikit-learn, h5py, filelock, jinja2, fsspec):
#   ../shared/gpu/wheels.sh absl-py==2.5.1 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 \
#       pygments==2.21.0 grpcio==1.85.3 protobuf==7.36.2 six==1.17.0 typing-extensions==4.16.0
# Then, with the device tool: command "bash docs/gpu/check.sh", carry [".whl"], timeout_s 600
# Steps (default: data, study, sample, in this order; name some to run only those):
#   data      render the study's 2 x 2,000 shapes images at 224 px into the cache (the
#             stand-in for decoding photographs; a later run loads them)
#   study     the ResNet50V2 seed study at 224 px on 2,000 shapes images, 12 configurations
#             x 9 repeats = 108 executions of 5 epochs, the suite alone, end to end (README
#             "Speed": target < 2 minutes)
#   study-mixed  the same study with --precision mixed_bfloat16 (bfloat16 compute; the
#             prefix cache and large evaluation batches are off under it)
#   throughput  docs/gpu/throughput.py: the rate (T multiply-adds a second) of one training
#             step of the study's model at depth 0 on synthetic batches on the device: float32
#             and bfloat16 at batch 32 (and without XLA's kernel timing), bfloat16 at 9 x 32
#             as one model, and 9 models as one vmapped program (needs no data step)
#   study-again  the study step once more, in a new process on the same machine: source
#             weights from the cache folder, compiled programs from JAX's persistent cache
#             (run it after study; alone it is the study on a fresh machine)
#   sample    `perf` on the study's first 2 configurations (18 executions): the suite, and
#             plain KerasTuner on 2 of the 9 executions per configuration, the rest
#             estimated (target >= 20x)
#   device-data  docs/gpu/spaces/device-data.py (pretrained, frozen at 8 and 16 blocks,
#             3 repeats) with the training data on the device and with --no-device-data:
#             seconds per epoch at each depth, and whether epochs.csv is the same
#   together-study  the study's first configuration (9 executions) with --train-together,
#             to set beside the study step's first trial
#   memory    50 trials of docs/gpu/spaces/memory-50.py: RSS and device memory per trial
#   together  the default study with 5 repeats alone and --train-together: times, and
#             whether epochs.csv is the same
#   perf      the default study's perf (plain KerasTuner on 2 of 5 executions per
#             configuration)
# Each step has its own time limit, cut to what is left of GPU_CHECK_SECONDS (default 540,
# to end inside the device tool's 600 s), and a step that runs out of time still leaves
# what the steps before it measured. $OUT gets steps.txt, device.json, nvidia-smi.txt,
# throughput.jsonl (step throughput),
# summary.json (the numbers, by docs/gpu/summary.py) and everything.tar.gz (each step's
# log and run directory, without weights), both renewed after every step: the device tool
# brings back at most 8 files.
# A dry run on a CPU: OUT=/tmp/gpu-check GPU_CHECK_SMALL=1 bash docs/gpu/check.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
steps=${*:-data study sample}

deadline=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-540} ))
if [ -d .whl ] && [ -z "${GPU_CHECK_SMALL:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
fi
# Unbuffered: a step cut short by its limit still shows how far it got.
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
export FINETUNE_BENCH_CACHE=${FINETUNE_BENCH_CACHE:-/tmp/gpu-check-cache}
work=${GPU_CHECK_WORK:-/tmp/gpu-check-work}
runs=$work/runs logs=$work/logs
rm -rf "$work"
mkdir -p "$runs" "$logs"

# The study's size; GPU_CHECK_SMALL shrinks every step to try the script on a CPU.
if [ -n "${GPU_CHECK_SMALL:-}" ]; then
    size=32 per_class=40
    study=(--backbone resnet-mini --image-size $size --images-per-class $per_class
           --train-per-class 10 --epochs 1 --repeats 3 --max-trials 2 --pretrain-epochs 1)
    memory_trials=12 default=(--epochs 1 --max-trials 2 --pretrain-epochs 1)
    together_repeats=2 throughput=(--backbone resnet-mini --image-size $size --steps 3)
else
    size=224 per_class=400
    study=(--backbone resnet50v2 --image-size $size --images-per-class $per_class
           --train-per-class 200 --epochs 5 --repeats 9 --cache-memory 24000)
    memory_trials=50 default=() together_repeats=5 throughput=(--limit 65)
fi

log() { echo "$(date -u +%FT%TZ) $*" | tee -a "$OUT/steps.txt"; }
step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2 started left
    shift 2
    started=$(date +%s)
    left=$(( deadline - started - 30 ))  # 30 s for the summary and the archive
    if [ "$left" -lt 30 ]; then
        log "skip $name: ${left} s left of GPU_CHECK_SECONDS"
        return
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    log "start $name (limit ${limit} s): $*"
    timeout -s TERM -k 10 "$limit" "$@" > "$logs/$name.log" 2>&1
    log "end $name: exit $? after $(( $(date +%s) - started )) s"
    summarise
}
summarise() {  # after every step too, so a call cut short still brings back what ran
    python3 docs/gpu/summary.py "$runs" > "$OUT/summary.json"
    # Weights and KerasTuner's checkpoints stay behind: tables, reports, plots, logs go.
    tar czf "$OUT/everything.tar.gz" --exclude='*.h5' --exclude='*.keras' --exclude='*.npz' \
        --exclude='*.weights*' --exclude='checkpoint*' -C "$work" logs runs
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c 'import json; from bench.device import describe_device, library_versions
print(json.dumps(describe_device() | {"versions": library_versions()}, indent=2))' \
    > "$OUT/device.json" 2>&1
log "device: $(tr -d '\n' < "$OUT/device.json" | head -c 300)"

for name in $steps; do
    case $name in
    data)
        step data 240 python3 -c "from bench.data.datasets import DataRequest, load_dataset
import sys, time; started = time.perf_counter()
print(load_dataset('shapes', DataRequest(image_size=$size, images_per_class=$per_class,
      cache_dir='$FINETUNE_BENCH_CACHE')).summary(), f'{time.perf_counter() - started:.1f} s')" ;;
    study)
        step study 300 python3 run_bench.py run --space seed --dataset shapes "${study[@]}" \
            --results-dir "$runs" --name study ;;
    study-again)
        step study-again 300 python3 run_bench.py run --space seed --dataset shapes \
            "${study[@]}" --results-dir "$runs" --name study-again ;;
    study-mixed)
        step study-mixed 300 python3 run_bench.py run --space seed --dataset shapes \
            "${study[@]}" --precision mixed_bfloat16 --results-dir "$runs" --name study-mixed ;;
    throughput)
        step throughput 330 python3 docs/gpu/throughput.py --out "$OUT/throughput.jsonl" \
            "${throughput[@]}" ;;
    sample)
        # Its own compilation cache: the suite must not start with the study's programs.
        step sample 300 env JAX_COMPILATION_CACHE_DIR="$work/jax-sample" \
            python3 run_bench.py perf --space seed --dataset shapes "${study[@]}" \
            --max-trials 2 --baseline-repeats 2 --results-dir "$runs" --name sample ;;
    device-data)
        for mode in on off; do
            flag=() && [ $mode = off ] && flag=(--no-device-data)
            step "device-$mode" 150 python3 run_bench.py run --spaces-dir docs/gpu/spaces \
                --space device-data "${study[@]}" --repeats 3 --max-trials 2 "${flag[@]}" \
                --results-dir "$runs" --name "device-$mode"
        done ;;
    together-study)
        step together-study 200 python3 run_bench.py run --space seed --dataset shapes \
            "${study[@]}" --max-trials 1 --train-together --results-dir "$runs" \
            --name together-study ;;
    memory)
        step memory 80 python3 run_bench.py run --spaces-dir docs/gpu/spaces --space memory-50 \
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
        log "unknown step $name (data, study, study-again, study-mixed, throughput, sample, device-data, together-study, memory," \
            "together, perf)" ;;
    esac
done

summarise
log "summary: $(tr -d '\n ' < "$OUT/summary.json" | head -c 600)"
log "archive: $(du -h "$OUT/everything.tar.gz" | cut -f1)"
