#!/usr/bin/env bash
# Sequential editing curve: ES and drawdown after 1, 10, 100 and 1000 edits made one after another by MEND
# (each on the model the previous edits left, all evaluated after the last), question answering on
# SmolLM2-135M with the large facts-qa record set.
# Usage: [NS="1 10"] bash experiments/sequential.sh
# MEND is trained as configured in configs/smollm2_qa.yaml, or reused from earlier runs.
# Writes experiments/results/sequential_n<N>.{md,json}, sequential.md and sequential.png.
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
cfg=configs/smollm2_qa.yaml
large_qa_records
ensure_fit smollm2_qa "$cfg"; mend=$FIT_RUN
mkdir -p experiments/results
tables=()
for n in ${NS:-1 10 100 1000}; do
  records=$(( n >= 200 ? n : 200 ))   # at least 200 edits; chains of n
  "$BIN/mendlight" table -c "$cfg" --out "experiments/results/sequential_n$n" \
    --title "Sequential editing: chains of n = $n edits" --command "${NS:+NS=\"$NS\" }bash experiments/sequential.sh" \
    --editor "MEND=$mend" \
    -- --data.init_args.dataset "$LARGE_QA" --data.init_args.eval_n_edits 1 --data.init_args.max_eval_records "$records" \
    --model.init_args.sequential "$n"
  tables+=("experiments/results/sequential_n$n.json")
done
"$BIN/python" experiments/curves.py --x-label "sequential edits n" --x-from-title "n = " --log-x \
  --title "Sequential editing with MEND on question answering (SmolLM2-135M)" \
  --command "${NS:+NS=\"$NS\" }bash experiments/sequential.sh" --out experiments/results/sequential "${tables[@]}"
