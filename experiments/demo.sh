#!/usr/bin/env bash
# `make demo`: train MEND on the embedded SmolLM2 + facts, test MEND and FT on the test split, compare.
# Usage: bash experiments/demo.sh [extra `mendlight fit` args, e.g. --trainer.max_time 00:00:05:00]
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh

echo "== 1/4 building the embedded fact dataset"
"$BIN/python" -m mendlight.data.builders.facts

echo "== 2/4 training MEND (configs/smollm2_facts.yaml; bounded by trainer.max_time), 3/4 testing it"
train_and_test smollm2_facts "$@"
mend_dir=$TESTED_RUN

echo "== 3/4 testing FT on the test split"
test_only smollm2_facts_ft
ft_dir=$TESTED_RUN

echo "== 4/4 MEND vs FT"
mkdir -p experiments/results
"$BIN/python" -m mendlight.reporting "$mend_dir" "$ft_dir" --out experiments/results/demo_smollm2_facts.md \
  --title "MEND vs FT on SmolLM2-135M + embedded facts (make demo)" --command "make demo"
echo "TensorBoard: make tb  (runs/smollm2_facts, runs/smollm2_facts_ft)"
