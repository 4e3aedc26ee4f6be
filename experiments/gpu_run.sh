#!/usr/bin/env bash
# Measurements on a CUDA machine, in one short session (each stage bounded by its own time limit):
#   1. the CUDA tests (tests/gpu: every editor on the GPU gives the CPU's numbers; fit and test on the GPU in
#      float32 and bf16-mixed);
#   2. MEND on SmolLM2-135M question answering, the long run's setting (configs/smollm2_qa_long.yaml) trained
#      on the GPU for FIT_TIME, then tested on TEST records, one edit per batch, and its validation curve;
#   3. the training step's throughput (experiments/bench_train.py) and the k-edit calls
#      (experiments/bench_batched.py) on the GPU.
# Usage: bash experiments/gpu_run.sh OUT_DIR [STAGES] with STAGES a subset of "tests fit bench" (default all).
# Environment: FACTS the question-answering dataset (default facts-qa with the relation-disjoint split; a records
# directory of such a build where the data packages are not installed), FIT_TIME (default 00:00:03:20),
# TEST (default 400), PYTHON (default python3); ACCELERATOR=cpu DEVICE=cpu try the script itself on a CPU.
# Everything lands in OUT_DIR: logs, the benchmark tables, the run directories without their checkpoints.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1")
stages=${2:-tests fit bench}
py=${PYTHON:-python3}
facts=${FACTS:-facts-qa}
fit_time=${FIT_TIME:-00:00:03:20}
test_records=${TEST:-400}
accelerator=${ACCELERATOR:-gpu}
device=${DEVICE:-cuda}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$py" -c "import torch, transformers, pytorch_lightning as pl, torchmetrics as tm; print('torch', \
torch.__version__, 'transformers', transformers.__version__, 'lightning', pl.__version__, 'torchmetrics', \
tm.__version__)"
  git rev-parse --short HEAD 2>/dev/null || true
} > "$out/machine.txt" 2>&1

if [[ " $stages " == *" tests "* ]]; then
  timeout 300 "$py" -m pytest -q -p no:cacheprovider tests/gpu > "$out/tests_gpu.log" 2>&1
  echo "tests/gpu: exit $?" | tee -a "$out/machine.txt"
fi

if [[ " $stages " == *" fit "* ]]; then
  options=(--data.init_args.dataset "$facts")
  [ "$facts" != facts-qa ] && options+=(--data.init_args.dataset_options null)  # a records directory
  timeout 300 "$py" -m mendlight fit -c configs/smollm2_qa_long.yaml --trainer.accelerator "$accelerator" \
    --trainer.max_time "$fit_time" --trainer.val_check_interval 1000 --trainer.limit_val_batches 100 \
    --trainer.enable_progress_bar false "${options[@]}" > "$out/fit.log" 2>&1
  echo "fit: exit $?" | tee -a "$out/machine.txt"
  run=$(ls -d runs/smollm2_qa_long/version_* | sort -t_ -k2 -n | tail -1)
  best=$(ls "$run"/checkpoints/best-*.ckpt 2>/dev/null | tail -1)
  timeout 120 "$py" -m mendlight test -c "$run/config.yaml" --ckpt_path "${best:-$run/checkpoints/last.ckpt}" \
    --trainer.accelerator "$accelerator" --trainer.limit_test_batches "$test_records" \
    --trainer.enable_progress_bar false > "$out/test.log" 2>&1
  echo "test: exit $?" | tee -a "$out/machine.txt"
  "$py" experiments/validation_curve.py "$run" --out "$out/gpu_run_curve" \
    --title "MEND on SmolLM2-135M question answering, trained on one GPU" \
    --command "FIT_TIME=$fit_time bash experiments/gpu_run.sh OUT fit" >> "$out/fit.log" 2>&1
  tar czf "$out/runs.tar.gz" --exclude='*.ckpt' runs/smollm2_qa_long
fi

if [[ " $stages " == *" bench "* ]]; then
  timeout 90 "$py" experiments/bench_train.py --dataset "$facts" --device "$device" --ks 1 4 10 --steps 8 \
    --label "one NVIDIA GPU" --out "$out/bench_train_gpu.md" > "$out/bench.log" 2>&1
  echo "bench_train: exit $?" | tee -a "$out/machine.txt"
  timeout 110 "$py" experiments/bench_batched.py --dataset "$facts" --ks 1 125 1000 --singles 10 \
    --out "$out/bench_batched_gpu.md" >> "$out/bench.log" 2>&1
  echo "bench_batched: exit $?" | tee -a "$out/machine.txt"
fi
