#!/usr/bin/env bash
# `make demo`: train MEND on the embedded SmolLM2 + facts, then test MEND and FT on the same test records.
# Usage: bash experiments/demo.sh [extra `mendlight fit` args, e.g. --trainer.max_steps 200 for a quick try]
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh

echo "== 1/3 building the embedded fact dataset"
"$BIN/python" -m mendlight.data.builders.facts

echo "== 2/3 training MEND (configs/smollm2_facts.yaml: 2000 steps of 4 independent edits, at most 30 minutes)"
"$BIN/mendlight" fit -c configs/smollm2_facts.yaml "$@"
fit_run=$(latest_fit_run smollm2_facts)

echo "== 3/3 MEND and FT on the same test records (mendlight table)"
mkdir -p experiments/results
"$BIN/mendlight" table -c configs/smollm2_facts.yaml --out experiments/results/demo_smollm2_facts \
  --title "MEND vs FT on SmolLM2-135M + embedded facts (make demo)" --command "make demo" \
  --editor "MEND=$fit_run" --editor "FT=configs/smollm2_facts_ft.yaml" \
  -- --trainer.limit_test_batches 300   # the setting's 300 test records, for both editors
echo "TensorBoard: make tb  (runs/smollm2_facts, runs/smollm2_facts_ft)"
