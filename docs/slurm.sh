#!/bin/bash
# A study spread over several machines with SLURM: one chief, one worker per node.
#
#   sbatch docs/slurm.sh --space seed --repeats 5      # any 'run' options after the script
#
# Every node must see the same results folder and weights cache (a shared disk): the
# chief writes RESULTS/NAME/run.json and tuner/, each worker its own workers/ID/ table and
# the trials it runs. Written from the README's instructions; not run on a real cluster.
#SBATCH --job-name=finetune-bench
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --time=12:00:00
set -euo pipefail

RESULTS=${RESULTS:-$HOME/finetune-results}
export FINETUNE_BENCH_CACHE=${FINETUNE_BENCH_CACHE:-$HOME/.cache/finetune-bench}
NAME=${NAME:-study-$SLURM_JOB_ID}
PORT=${PORT:-8470}
CHIEF_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

# The chief plans the study, pretrains the source model (once, cached), writes run.json,
# then serves KerasTuner's oracle until every trial has ended and writes the report.
srun --overlap --nodes=1 --ntasks=1 --nodelist="$CHIEF_HOST" \
    python run_bench.py chief --port "$PORT" --name "$NAME" --results-dir "$RESULTS" "$@" &
CHIEF_PID=$!

# One worker per node (the chief's node too). Each waits for run.json, then asks the
# chief for trials. A worker restarted with the same --id gets its unfinished trial back.
srun --overlap --ntasks="$SLURM_NNODES" --ntasks-per-node=1 bash -c \
    "python run_bench.py worker --chief $CHIEF_HOST:$PORT --run $RESULTS/$NAME --id tuner\$SLURM_PROCID"

wait "$CHIEF_PID"
