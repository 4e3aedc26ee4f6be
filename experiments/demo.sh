#!/usr/bin/env bash
# `make demo`: train MEND on the embedded SmolLM2 + facts, test MEND and FT on the test split, compare.
# Usage: bash experiments/demo.sh [extra `mendlight fit` args, e.g. --trainer.max_time 00:00:05:00]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export PYTHONUNBUFFERED=1

latest_run() { ls -d "runs/$1"/version_* 2>/dev/null | sort -t_ -k2 -n | tail -1; }

echo "== 1/4 building the embedded fact dataset"
"$BIN/python" -m mendlight.data.builders.facts

echo "== 2/4 training MEND (configs/smollm2_facts.yaml; bounded by trainer.max_time)"
"$BIN/mendlight" fit -c configs/smollm2_facts.yaml "$@"
fit_dir=$(latest_run smollm2_facts)
ckpt=$(ls "$fit_dir"/checkpoints/best-*.ckpt 2>/dev/null | head -1)
ckpt=${ckpt:-$fit_dir/checkpoints/last.ckpt}
echo "trained editor: $ckpt"

echo "== 3/4 testing MEND and FT on the test split"
"$BIN/mendlight" test -c "$fit_dir/config.yaml" --ckpt_path "$ckpt"
mend_dir=$(latest_run smollm2_facts)
"$BIN/mendlight" test -c configs/smollm2_facts_ft.yaml
ft_dir=$(latest_run smollm2_facts_ft)

echo "== 4/4 MEND vs FT"
mkdir -p experiments/results
"$BIN/python" -m mendlight.reporting "$mend_dir" "$ft_dir" --out experiments/results/demo_smollm2_facts.md
echo "TensorBoard: make tb  (runs/smollm2_facts, runs/smollm2_facts_ft)"
