#!/usr/bin/env bash
# Table 5 analogue (MEND paper, batched editing), extended: k ∈ {1, 5, 25, 125, 500, 1000} simultaneous edits
# on question answering (SmolLM2-135M), by MEND trained on single edits, MEND, ENN and MALMEN trained at
# k = 25 (configs/train/batched25.yaml: the largest k this 2-CPU machine trains in reasonable time), ENN
# trained on single edits, FT (fine-tuned on all k edits of a batch at once) and the cache.
#
# Usage: [KS="1 5 25 125 500 1000"] [KS_FT="$KS"] [SETS="mixed hard"] [ROWS="mend mend25 malmen25
#        malmen25lr malmen25lr2 malmen25subj malmen25lr6 malmen125lr enn enn25 ft cache"] [TRAIN=0]
#        [OUT=experiments/results/table5]
#        bash experiments/table5.sh
#   mixed  the test split of facts-qa (2,801 records over 27 relations, in a seeded order that mixes
#          relations): batches drawn at random across relations and question templates, so k = 1,000 is two
#          batches; each table says the largest share one template held in a batch
#   hard   the hard case, labelled so: one relation and one question template (facts-qa restricted to
#          city_country with 10,000 cities, about 1,000 test records: k up to 500), the kind of batch the
#          earlier Table 5 drew (228 of its 250 records shared one template)
#   KS_FT  the k FT runs at (default: every k of KS). FT is by far the slowest row: fine-tuning on all k
#          edits at once took 12–21 minutes per 500-edit batch (parts 30, 21) and 49 minutes per 1,000-edit
#          batch (part 27) on one core of this 2-CPU machine; KS_FT="1 5 25 125" leaves out those calls
#   ROWS   which editors (default all; malmen25lr is MALMEN ×25 trained with Adam at 1e-4,
#          configs/train/lr1e-4.yaml, instead of the public 1e-5; malmen25lr6 the same editing the last 6
#          blocks' MLPs, configs/train/last6blocks.yaml; malmen125lr continues malmen25lr's best checkpoint
#          at k = 125, configs/train/batched125.yaml; malmen25lr2 tests malmen25lr with two edit rounds,
#          configs/test/rounds2.yaml; malmen25subj keys MALMEN ×25 on the subject's last token and edits
#          blocks 3-8, configs/train/subject_keys.yaml); TRAIN=0 trains nothing and leaves out the editors
#          not yet trained
#   OUT    the results' path prefix (default experiments/results/table5)
# Trained editors are reused from earlier runs (runs/<stem>/, delete one to retrain); an unfinished run (the
# session ended) is resumed from its last.ckpt. Test records per k: two
# batches of k, at least 250. Cache ε: the one picked on validation by experiments/table4.sh (or 2.6333).
# Every row is tested in float32 (--trainer.precision 32-true), also an editor trained with bf16-mixed.
# Writes OUT_<set>_k<k>.{md,json} and OUT_<set>.{md,json,png} (log-scale k axis).
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
cfg=configs/smollm2_qa.yaml
batched=configs/train/batched25.yaml
ROWS_WANTED=${ROWS:-mend mend25 malmen25 malmen25lr malmen25lr2 malmen25subj malmen25lr6 malmen125lr enn enn25 ft cache}
rows=" $ROWS_WANTED "
trained_row mend "MEND" smollm2_qa "$cfg"
trained_row mend25 "MEND ×25" smollm2_qa+batched25 "$cfg" "$batched"
trained_row malmen25 "MALMEN ×25" smollm2_qa+malmen+batched25 "$cfg" configs/editor/malmen.yaml "$batched"
malmen25lr=(smollm2_qa+malmen+batched25+lr1e-4 "$cfg" configs/editor/malmen.yaml "$batched" configs/train/lr1e-4.yaml)
trained_row malmen25lr "MALMEN ×25, Adam 1e-4" "${malmen25lr[@]}"
if [[ $rows == *" malmen25lr2 "* ]]; then  # the same trained editor, tested with two edit rounds
  if ensure_fit "${malmen25lr[@]}"; then
    TRAINED_EDITORS+=(--editor "MALMEN ×25, Adam 1e-4, 2 rounds=$FIT_RUN,configs/test/rounds2.yaml")
  else
    echo "== MALMEN ×25 (Adam 1e-4), 2 rounds: no finished run and TRAIN=0: left out"
  fi
fi
trained_row malmen25subj "MALMEN ×25, Adam 1e-4, subject keys (blocks 3–8)" \
  smollm2_qa+malmen+batched25+lr1e-4+subject_keys "$cfg" configs/editor/malmen.yaml "$batched" \
  configs/train/lr1e-4.yaml configs/train/subject_keys.yaml
trained_row malmen25lr6 "MALMEN ×25, Adam 1e-4, last 6 blocks" smollm2_qa+malmen+batched25+lr1e-4+last6blocks "$cfg" \
  configs/editor/malmen.yaml "$batched" configs/train/lr1e-4.yaml configs/train/last6blocks.yaml
if [[ $rows == *" malmen125lr "* ]]; then  # continues the k = 25 editor (trained first if need be) at k = 125
  if ensure_fit "${malmen25lr[@]}"; then
    warm=$(ls -t "$FIT_RUN"/checkpoints/best-*.ckpt | head -1)
    trained_row malmen125lr "MALMEN ×125 (from ×25), Adam 1e-4" smollm2_qa+malmen+batched125+lr1e-4 "$cfg" \
      configs/editor/malmen.yaml configs/train/batched125.yaml configs/train/lr1e-4.yaml -- --ckpt_path "$warm"
  else
    echo "== MALMEN ×125: no finished MALMEN ×25 (Adam 1e-4) run to continue and TRAIN=0: left out"
  fi
fi
trained_row enn "ENN" smollm2_qa+enn "$cfg" configs/editor/enn.yaml
trained_row enn25 "ENN ×25" smollm2_qa+enn+batched25 "$cfg" configs/editor/enn.yaml "$batched"
eps_cfg=experiments/results/table4_qa_cache.yaml
[ -f "$eps_cfg" ] || printf 'model:\n  init_args:\n    epsilon: 2.6333\n' > "$eps_cfg"
eps=$(awk '/epsilon:/ {print $2}' "$eps_cfg")
ft_cfg=experiments/results/table4_qa_ft_lr.yaml
[ -f "$ft_cfg" ] || printf 'model:\n  init_args:\n    edit_lr: 1.0e-3\n' > "$ft_cfg"
mkdir -p experiments/results
for set in ${SETS:-mixed hard}; do
  case $set in
    mixed) options=(); label="batches drawn across 27 relations"; max_k=1000 ;;
    hard) options=(--data.init_args.dataset_options '{"relations": ["city_country"], "n_cities": 10000}')
      label="hard case: one relation, one question template"; max_k=500 ;;
    *) echo "unknown set $set (mixed or hard)" >&2; exit 2 ;;
  esac
  tables=()
  for k in ${KS:-1 5 25 125 500 1000}; do
    [ "$k" -le "$max_k" ] || { echo "== $set: skipping k = $k (the split holds fewer than 2k records)"; continue; }
    records=$(( 2 * k > 250 ? 2 * k : 250 ))
    editors=("${TRAINED_EDITORS[@]}")
    [[ $rows == *" ft "* && " ${KS_FT:-${KS:-1 5 25 125 500 1000}} " == *" $k "* ]] &&
      editors+=(--editor "FT=$cfg,configs/editor/ft.yaml,$ft_cfg")
    [[ $rows == *" cache "* ]] && editors+=(--editor "Cache (ε=$eps)=$cfg,configs/editor/cache.yaml,$eps_cfg")
    out=${OUT:-experiments/results/table5}_${set}_k$k
    "$BIN/mendlight" table -c "$cfg" --out "$out" \
      --title "Batched editing ($label): k = $k simultaneous edits" \
      --command "KS=$k SETS=$set${KS_FT:+ KS_FT=\"$KS_FT\"}${ROWS:+ ROWS=\"$ROWS\"} bash experiments/table5.sh" \
      "${editors[@]}" \
      -- --trainer.precision 32-true --data.init_args.eval_n_edits "$k" --data.init_args.max_eval_records "$records" \
      "${options[@]}"
    tables+=("$out.json")
  done
  "$BIN/python" experiments/curves.py --x-label "simultaneous edits k" --x-from-title "k = " --log-x \
    --title "Table 5 analogue ($label): SmolLM2-135M question answering" \
    --command "KS=\"${KS:-1 5 25 125 500 1000}\" SETS=$set${KS_FT:+ KS_FT=\"$KS_FT\"}${ROWS:+ ROWS=\"$ROWS\"} bash experiments/table5.sh" \
    --out "${OUT:-experiments/results/table5}_$set" "${tables[@]}"
done
