#!/usr/bin/env bash
# Sequential editing curve: ES and drawdown after n = 1, 10, 100 and 1000 edits made one after another (each on
# the model the previous edits left, all evaluated after the last), question answering on SmolLM2-135M.
#
# Usage: [NS="1 10 100 1000"] [ROWS="mend malmen25 malmen25lr"] [SET=mixed|cities] [TRAIN=0] [OUT=...] bash experiments/sequential.sh
#   ROWS   mend      MEND trained on single edits (configs/smollm2_qa.yaml)
#          malmen25  MALMEN trained at k = 25 (configs/smollm2_qa.yaml + configs/editor/malmen.yaml +
#                    configs/train/batched25.yaml); each edit of a chain is one fact, a one-key solve
#          malmen25lr  the same trained with Adam at 1e-4 (+ configs/train/lr1e-4.yaml), the best MALMEN of
#                    experiments/table5.sh
#   SET    mixed     the facts-qa test split (27 relations, the records of experiments/table5.sh's mixed set;
#                    default); results in experiments/results/sequential_mixed*
#          cities    the large question-answering record set (experiments/lib.sh: large_qa_records), the set
#                    of the first sequential curve (2026-12-03, MEND only); results in
#                    experiments/results/sequential*
#   TRAIN=0 trains nothing and leaves out the editors not yet trained; trained editors are reused from
#   runs/<stem>/ (an unfinished run is resumed from its last.ckpt).
# Every row is tested in float32. Writes OUT_n<N>.{md,json} and OUT.{md,json,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
cfg=configs/smollm2_qa.yaml
ROWS_WANTED=${ROWS:-mend malmen25 malmen25lr}
trained_row mend "MEND" smollm2_qa "$cfg"
trained_row malmen25 "MALMEN ×25" smollm2_qa+malmen+batched25 "$cfg" configs/editor/malmen.yaml \
  configs/train/batched25.yaml
trained_row malmen25lr "MALMEN ×25, Adam 1e-4" smollm2_qa+malmen+batched25+lr1e-4 "$cfg" configs/editor/malmen.yaml \
  configs/train/batched25.yaml configs/train/lr1e-4.yaml
case ${SET:-mixed} in
  mixed) data=(); out=${OUT:-experiments/results/sequential_mixed}; label="facts-qa test split, 27 relations" ;;
  cities) large_qa_records; data=(--data.init_args.dataset "$LARGE_QA"); out=${OUT:-experiments/results/sequential}
    label="large question-answering record set" ;;
  *) echo "unknown SET ${SET} (mixed or cities)" >&2; exit 2 ;;
esac
mkdir -p experiments/results
tables=()
for n in ${NS:-1 10 100 1000}; do
  records=$(( n >= 200 ? n : 200 ))   # at least 200 edits; chains of n
  "$BIN/mendlight" table -c "$cfg" --out "${out}_n$n" \
    --title "Sequential editing ($label): chains of n = $n edits" \
    --command "NS=$n SET=${SET:-mixed}${ROWS:+ ROWS=\"$ROWS\"} bash experiments/sequential.sh" \
    "${TRAINED_EDITORS[@]}" \
    -- --trainer.precision 32-true "${data[@]}" --data.init_args.eval_n_edits 1 \
    --data.init_args.max_eval_records "$records" --model.init_args.sequential "$n"
  tables+=("${out}_n$n.json")
done
"$BIN/python" experiments/curves.py --x-label "sequential edits n" --x-from-title "n = " --log-x \
  --title "Sequential editing on question answering ($label, SmolLM2-135M)" \
  --command "NS=\"${NS:-1 10 100 1000}\" SET=${SET:-mixed}${ROWS:+ ROWS=\"$ROWS\"} bash experiments/sequential.sh" \
  --out "$out" "${tables[@]}"
