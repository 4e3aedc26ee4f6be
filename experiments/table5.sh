#!/usr/bin/env bash
# Table 5 analogue (MEND paper, batched editing): MEND and ENN making k ∈ {1, 5, 25, 75, 125} simultaneous
# edits on question answering (SmolLM2-135M, the large facts-qa record set: 1,000+ test records).
# Usage: [STEPS=N] [KS="1 5"] bash experiments/table5.sh
# MEND (configs/smollm2_qa.yaml) and ENN (configs/editor/enn.yaml; STEPS=N sets its budget as in table4.sh) are
# trained with one edit per step, or reused from earlier runs (experiments/table4.sh trains the same ones);
# "MEND ×5" is MEND trained with five simultaneous edits per step (configs/train/batched5.yaml, its own budget).
# Writes experiments/results/table5_k<k>.{md,json}, table5.md and table5.png (ES and drawdown against k).
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
cfg=configs/smollm2_qa.yaml
large_qa_records
ensure_fit smollm2_qa "$cfg"; mend=$FIT_RUN
ensure_fit smollm2_qa+batched5 "$cfg" configs/train/batched5.yaml; mend5=$FIT_RUN
steps=()
[ -n "${STEPS:-}" ] && steps=(--trainer.max_steps "$STEPS")   # ENN's budget, as in table4.sh
ensure_fit smollm2_qa+enn "$cfg" configs/editor/enn.yaml -- "${steps[@]}"; enn=$FIT_RUN
mkdir -p experiments/results
tables=()
for k in ${KS:-1 5 25 75 125}; do
  records=$(( 2 * k > 250 ? 2 * k : 250 ))   # at least 250 test records, and 2 batches of k
  "$BIN/mendlight" table -c "$cfg" --out "experiments/results/table5_k$k" \
    --title "Batched editing: k = $k simultaneous edits" --command "${STEPS:+STEPS=$STEPS }bash experiments/table5.sh" \
    --editor "MEND=$mend" --editor "MEND ×5=$mend5" --editor "ENN=$enn" \
    -- --data.init_args.dataset "$LARGE_QA" --data.init_args.eval_n_edits "$k" --data.init_args.max_eval_records "$records"
  tables+=("experiments/results/table5_k$k.json")
done
"$BIN/python" experiments/curves.py --x-label "simultaneous edits k" --x-from-title "k = " \
  --title "Table 5 analogue: batched edits on question answering (SmolLM2-135M)" \
  --command "${STEPS:+STEPS=$STEPS }KS=\"${KS:-1 5 25 75 125}\" bash experiments/table5.sh" --out experiments/results/table5 "${tables[@]}"
