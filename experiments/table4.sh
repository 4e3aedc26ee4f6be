#!/usr/bin/env bash
# Table 4 analogue (MEND paper, small models): FT, FT+KL, ENN, KE, Cache and MEND on the offline settings
#   qa         question answering: SmolLM2-135M + facts-qa (zsRE analogue; accuracy drawdown)
#   factcheck  fact-checking: the MiniLM-L6 fact-checker + claims (FEVER analogue; accuracy drawdown)
#   gen        generation: SmolLM2-135M + FOLDOC 10-token continuations (Wikitext analogue; perplexity drawdown)
# Usage: bash experiments/table4.sh [qa] [factcheck] [gen]   (default: all three)
# MEND, ENN and KE are trained with the setting's step budget (an existing trained run is reused; delete it to
# retrain; STEPS=N overrides the budget of ENN and KE); Cache's epsilon is picked on the validation split; FT and
# FT+KL use the setting's FT learning rate (configs/<setting>_ft.yaml).
# Writes experiments/results/table4_<setting>.{md,json} and table4.md (all settings).
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
declare -A CONFIG=([qa]=smollm2_qa [factcheck]=minilm_factcheck [gen]=smollm2_gen)
declare -A DATASET=([qa]=facts-qa [factcheck]=claims [gen]=generation)
declare -A BASE=([qa]=smollm2-135m [factcheck]=minilm-l6-factcheck [gen]=smollm2-135m)
declare -A LENGTH=([qa]=64 [factcheck]=64 [gen]=96)
declare -A NLOC=([qa]=2 [factcheck]=2 [gen]=1)
# FT's learning rate per setting, as in configs/<setting>_ft.yaml (MiniLM needs 1e-4; 1e-3 on SmolLM2).
declare -A FT_LR=([qa]=1.0e-3 [factcheck]=1.0e-4 [gen]=1.0e-3)
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(qa factcheck gen)
mkdir -p experiments/results
for s in "${settings[@]}"; do
  stem=${CONFIG[$s]:?unknown setting $s (choose qa, factcheck, gen)}
  cfg=configs/$stem.yaml
  steps=()
  [ -n "${STEPS:-}" ] && steps=(--trainer.max_steps "$STEPS")
  echo "== $s: MEND, ENN and KE (trained)"
  ensure_fit "$stem" "$cfg"; mend=$FIT_RUN
  ensure_fit "$stem+enn" "$cfg" configs/editor/enn.yaml -- "${steps[@]}"; enn=$FIT_RUN
  ensure_fit "$stem+ke" "$cfg" configs/editor/ke.yaml -- "${steps[@]}"; ke=$FIT_RUN
  echo "== $s: Cache epsilon on the validation split"
  eps_log=experiments/results/table4_${s}_cache_epsilon.txt
  "$BIN/python" -m mendlight.editors.cache_epsilon --base_model "${BASE[$s]}" --dataset "${DATASET[$s]}" \
    --max_length "${LENGTH[$s]}" --n_loc "${NLOC[$s]}" | tee "$eps_log"
  eps=$(awk '/^chosen epsilon:/ {print $3}' "$eps_log")
  eps_cfg=experiments/results/table4_${s}_cache.yaml
  printf 'model:\n  init_args:\n    epsilon: %s\n' "$eps" > "$eps_cfg"
  ft_cfg=experiments/results/table4_${s}_ft_lr.yaml
  printf 'model:\n  init_args:\n    edit_lr: %s\n' "${FT_LR[$s]}" > "$ft_cfg"
  echo "== $s: the table"
  "$BIN/mendlight" table -c "$cfg" --out "experiments/results/table4_$s" \
    --title "Table 4 analogue ($s): ${BASE[$s]} on ${DATASET[$s]}" \
    --command "${STEPS:+STEPS=$STEPS }bash experiments/table4.sh $s" \
    --editor "FT=$cfg,configs/editor/ft.yaml,$ft_cfg" \
    --editor "FT+KL=$cfg,configs/editor/ft_kl.yaml,$ft_cfg" \
    --editor "ENN=$enn" \
    --editor "KE=$ke" \
    --editor "Cache (ε=$eps)=$cfg,configs/editor/cache.yaml,$eps_cfg" \
    --editor "MEND=$mend"
done
{
  echo "# Table 4 analogue: the paper's editors on the offline settings"
  echo
  for s in qa factcheck gen; do
    f=experiments/results/table4_$s.md
    [ -f "$f" ] && sed 's/^# /## /' "$f" && echo
  done
} > experiments/results/table4.md
echo "wrote experiments/results/table4.md"
