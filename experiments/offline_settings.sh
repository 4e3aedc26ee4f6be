#!/usr/bin/env bash
# The three offline counterparts of the paper's task types: MEND (trained for a bounded time) and FT on
#   qa         question answering: SmolLM2-135M + the embedded facts with question prompts (zsRE analogue)
#   factcheck  fact-checking: the MiniLM-L6 fact-checker fine-tuned on the embedded claims (FEVER/BERT analogue)
#   gen        generation: SmolLM2-135M + FOLDOC prefixes with sampled 10-token continuations (Wikitext analogue)
# Usage: bash experiments/offline_settings.sh [qa] [factcheck] [gen]   (default: all three; `make offline`)
# Writes experiments/results/offline_<setting>.md (one table per setting) and offline_settings.md (all).
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
declare -A CONFIG=([qa]=smollm2_qa [factcheck]=minilm_factcheck [gen]=smollm2_gen)
declare -A TITLE=(
  [qa]="Question answering: SmolLM2-135M, embedded facts with question prompts (zsRE analogue)"
  [factcheck]="Fact-checking: MiniLM-L6 fact-checker, embedded claims (FEVER analogue)"
  [gen]="Generation: SmolLM2-135M, FOLDOC prefixes + sampled 10-token continuations (Wikitext analogue)"
)
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(qa factcheck gen)
mkdir -p experiments/results
for setting in "${settings[@]}"; do
  stem=${CONFIG[$setting]:?unknown setting $setting (choose qa, factcheck, gen)}
  echo "== $setting: training MEND ($stem)"
  "$BIN/mendlight" fit -c "configs/$stem.yaml" --trainer.enable_progress_bar false
  fit_run=$(latest_fit_run "$stem")
  echo "== $setting: MEND and FT on the same test records"
  "$BIN/mendlight" table -c "configs/$stem.yaml" --out "experiments/results/offline_$setting" \
    --title "${TITLE[$setting]}" --command "bash experiments/offline_settings.sh $setting" \
    --editor "MEND=$fit_run" --editor "FT=configs/${stem}_ft.yaml"
done
{
  echo "# MEND and FT on the three offline settings"
  echo
  for setting in qa factcheck gen; do
    f=experiments/results/offline_$setting.md
    [ -f "$f" ] && sed 's/^# /## /' "$f" && echo
  done
} > experiments/results/offline_settings.md
echo "wrote experiments/results/offline_settings.md"
