#!/usr/bin/env bash
# Table 6 analogue (MEND paper, ablations): MEND and its six variants on question answering and generation.
# Every row is trained with the same budget (STEPS, default 600 steps) from the setting config composed with
# its fragment (configs/editor/mend.yaml = MEND itself, configs/editor/mend_*.yaml = the variants).
# Usage: [STEPS=N] [RECORDS=N] bash experiments/table6.sh [qa] [gen]     (default: both)
# RECORDS=N tests on the first N test records only (default: the whole test split).
# Writes experiments/results/table6_<setting>.{md,json} and table6.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
declare -A CONFIG=([qa]=smollm2_qa [gen]=smollm2_gen)
VARIANTS=(mend mend_no_sharing mend_no_norm mend_no_id_init mend_only_u mend_only_delta mend_only_smaller)
declare -A LABEL=([mend]="MEND" [mend_no_sharing]="No sharing" [mend_no_norm]="No norm" [mend_no_id_init]="No ID init"
  [mend_only_u]="Only u" [mend_only_delta]="Only δ" [mend_only_smaller]="Only smaller")
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(qa gen)
steps=${STEPS:-600}
records=()
[ -n "${RECORDS:-}" ] && records=(-- --data.init_args.max_eval_records "$RECORDS")
mkdir -p experiments/results
for s in "${settings[@]}"; do
  stem=${CONFIG[$s]:?unknown setting $s (choose qa, gen)}
  cfg=configs/$stem.yaml
  editors=()
  for v in "${VARIANTS[@]}"; do
    ensure_fit "$stem+$v" "$cfg" "configs/editor/$v.yaml" -- --trainer.max_steps "$steps" \
      --trainer.val_check_interval $(( steps / 2 ))   # validated (and checkpointed) half-way and at the end
    editors+=(--editor "${LABEL[$v]}=$FIT_RUN")
  done
  "$BIN/mendlight" table -c "$cfg" --out "experiments/results/table6_$s" \
    --title "Table 6 analogue ($s): MEND ablations, $steps training steps each" \
    --command "STEPS=$steps ${RECORDS:+RECORDS=$RECORDS }bash experiments/table6.sh $s" "${editors[@]}" "${records[@]}"
done
{
  echo "# Table 6 analogue: MEND and its ablations"
  echo
  for s in qa gen; do
    f=experiments/results/table6_$s.md
    [ -f "$f" ] && sed 's/^# /## /' "$f" && echo
  done
} > experiments/results/table6.md
echo "wrote experiments/results/table6.md"
