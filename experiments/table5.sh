#!/usr/bin/env bash
# Table 5 analogue (MEND paper, batched editing): MEND and ENN making k ∈ {1, 5, 25, 75, 125} simultaneous
# edits on question answering (SmolLM2-135M, the large facts-qa record set: 1,000+ test records).
# Usage: [STEPS=N] [KS="1 5"] bash experiments/table5.sh
# Rows: MEND trained with one edit per step (configs/smollm2_qa.yaml), MEND trained with ten simultaneous edits per
# step (+ configs/batched10.yaml), and ENN (configs/editor/enn.yaml; STEPS=N sets its budget as in table4.sh).
# Trained editors are reused from earlier runs (experiments/table4.sh trains the same MEND and ENN).
# Writes experiments/results/table5_k<k>.{md,json}, table5.md and table5.png (ES and drawdown against k).
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
cfg=configs/smollm2_qa.yaml
large_qa_records
ensure_fit smollm2_qa "$cfg"; mend=$FIT_RUN
ensure_fit smollm2_qa+batched10 "$cfg" configs/batched10.yaml
# its last state, not the lowest validation loss: with ten edits per step the locality term grows as the edits
# succeed, so val/loss picked an early step (250: val/es 0.19, against 0.35 at step 750)
mend10=$FIT_RUN/checkpoints/last.ckpt
steps=()
[ -n "${STEPS:-}" ] && steps=(--trainer.max_steps "$STEPS")   # ENN's budget, as in table4.sh
ensure_fit smollm2_qa+enn "$cfg" configs/editor/enn.yaml -- "${steps[@]}"; enn=$FIT_RUN
mkdir -p experiments/results
tables=()
for k in ${KS:-1 5 25 75 125}; do
  records=$(( 2 * k > 250 ? 2 * k : 250 ))   # at least 250 test records, and 2 batches of k
  "$BIN/mendlight" table -c "$cfg" --out "experiments/results/table5_k$k" \
    --title "Batched editing: k = $k simultaneous edits" --command "bash experiments/table5.sh" \
    --editor "MEND (1 edit/step)=$mend" --editor "MEND (10 edits/step)=$mend10" --editor "ENN=$enn" \
    -- --data.init_args.dataset "$LARGE_QA" --data.init_args.eval_n_edits "$k" --data.init_args.max_eval_records "$records"
  tables+=("experiments/results/table5_k$k.json")
done
"$BIN/python" experiments/curves.py --x-label "simultaneous edits k" --x-from-title "k = " \
  --title "Table 5 analogue: batched edits on question answering (SmolLM2-135M)" \
  --command "${STEPS:+STEPS=$STEPS }KS=\"${KS:-1 5 25 75 125}\" bash experiments/table5.sh" --out experiments/results/table5 "${tables[@]}"
