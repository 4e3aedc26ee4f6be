#!/usr/bin/env bash
# The long run of issue #13: MEND on question answering trained until early stopping or its time cap
# (configs/smollm2_qa_long.yaml: relation-disjoint split, 2.5 hours at most), then its test table — MEND vs FT
# vs the cache on the same test records, split into known/unknown facts and seen/unseen relations, with ES per
# relation — and its validation curve.
# Usage: [MAX_TIME=DD:HH:MM:SS] [TEST=N] bash experiments/long_run.sh [extra `mendlight fit` args]
#   MAX_TIME  overrides the config's time cap (the cap counts the whole run, resumes included)
#   TEST      test records per editor (default 400; the first N of the shuffled test split)
# Resumable: a run stopped by a signal (or killed) is continued from its last.ckpt; a finished run is reused.
# Writes experiments/results/long_run.{md,json} (the table) and long_run_curve.{md,json,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
cfg=configs/smollm2_qa_long.yaml
stem=smollm2_qa_long
test_records=${TEST:-400}
fit_args=(--trainer.enable_progress_bar false "$@")
[ -n "${MAX_TIME:-}" ] && fit_args+=(--trainer.max_time "$MAX_TIME")

runs=()
if ! FIT_RUN=$(latest_fit_run "$stem"); then
  # the newest unfinished run with a last.ckpt: resume it (its curve joins the new run's in the figure)
  for run in $(ls -d runs/$stem/version_* 2>/dev/null | sort -t_ -k2 -n); do
    [ -f "$run/checkpoints/last.ckpt" ] && runs+=("$run")
  done
  resume=()
  if [ ${#runs[@]} -gt 0 ]; then
    resume=(--ckpt_path "${runs[-1]}/checkpoints/last.ckpt")
    echo "== resuming ${runs[-1]}"
  fi
  "$BIN/mendlight" fit -c "$cfg" "${fit_args[@]}" "${resume[@]}"
  FIT_RUN=$(latest_fit_run "$stem")
fi
echo "== trained editor: $FIT_RUN"

echo "== Cache epsilon on the validation split"
eps_log=experiments/results/long_run_cache_epsilon.txt
"$BIN/python" -m mendlight.editors.cache_epsilon --base_model smollm2-135m --dataset facts-qa \
  --dataset_options '{"split_by": "relation"}' --max_length 64 --n_loc 2 --limit 200 | tee "$eps_log"
eps=$(awk '/^chosen epsilon:/ {print $3}' "$eps_log")
eps_cfg=experiments/results/long_run_cache.yaml
# the setting trains MEND on independent edits, an option the cache (which edits as a whole) refuses
printf 'model:\n  init_args:\n    epsilon: %s\n    independent_edits: false\n' "$eps" > "$eps_cfg"

echo "== the test table ($test_records records per editor)"
"$BIN/mendlight" table -c "$cfg" --out experiments/results/long_run \
  --title "Long run: MEND vs FT vs the cache on SmolLM2-135M question answering (relation-disjoint split)" \
  --command "${MAX_TIME:+MAX_TIME=$MAX_TIME }TEST=$test_records bash experiments/long_run.sh" \
  --editor "MEND=$FIT_RUN" \
  --editor "FT=configs/smollm2_qa_ft.yaml" \
  --editor "Cache (ε=$eps)=$cfg,configs/editor/cache.yaml,$eps_cfg" \
  -- --trainer.limit_test_batches "$test_records"

"$BIN/python" experiments/validation_curve.py "${runs[@]}" "$FIT_RUN" --out experiments/results/long_run_curve \
  --title "MEND on SmolLM2-135M question answering: validation during the long run" \
  --command "bash experiments/long_run.sh"
