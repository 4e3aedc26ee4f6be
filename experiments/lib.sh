# Shared shell helpers of the experiment scripts (sourced, not run).
# BIN: the virtualenv's bin directory (default .venv/bin).
BIN=${BIN:-.venv/bin}
export PYTHONUNBUFFERED=1

# The newest run directory of a config stem: runs/<stem>/version_<highest N>.
latest_run() { ls -d "runs/$1"/version_* 2>/dev/null | sort -t_ -k2 -n | tail -1; }

# train_and_test CONFIG_STEM [extra fit args...]: fit an editor, then test its best checkpoint (last.ckpt when
# no validation ran). Sets TESTED_RUN to the test run's directory.
train_and_test() {
  local stem=$1
  shift
  "$BIN/mendlight" fit -c "configs/$stem.yaml" "$@"
  local fit_dir ckpt
  fit_dir=$(latest_run "$stem")
  ckpt=$(ls "$fit_dir"/checkpoints/best-*.ckpt 2>/dev/null | head -1)
  ckpt=${ckpt:-$fit_dir/checkpoints/last.ckpt}
  echo "trained editor: $ckpt"
  "$BIN/mendlight" test -c "$fit_dir/config.yaml" --ckpt_path "$ckpt"
  TESTED_RUN=$(latest_run "$stem")
}

# test_only CONFIG_STEM [extra test args...]: test a test-time editor. Sets TESTED_RUN.
test_only() {
  local stem=$1
  shift
  "$BIN/mendlight" test -c "configs/$stem.yaml" "$@"
  TESTED_RUN=$(latest_run "$stem")
}

# latest_fit_run STEM: the newest run directory of STEM that holds a trained editor (checkpoints/last.ckpt).
latest_fit_run() {
  local run
  for run in $(ls -d "runs/$1"/version_* 2>/dev/null | sort -t_ -k2 -n -r); do
    if [ -f "$run/checkpoints/last.ckpt" ]; then echo "$run"; return 0; fi
  done
  return 1
}

# ensure_fit STEM CONFIG... -- [fit args]: reuse the newest trained run of STEM (the run name of the configs
# composed), or train one with `mendlight fit -c CONFIG -c ...`. Sets FIT_RUN.
ensure_fit() {
  local stem=$1
  shift
  local configs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do configs+=(-c "$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  if FIT_RUN=$(latest_fit_run "$stem"); then
    echo "reusing the trained editor in $FIT_RUN (delete it to retrain)"
  else
    "$BIN/mendlight" fit "${configs[@]}" --trainer.enable_progress_bar false "$@"
    FIT_RUN=$(latest_fit_run "$stem")
  fi
}

# large_qa_records: build (once) the large question-answering record set used for batched and sequential
# editing (10,000 city_country facts; the same subject splits as facts-qa, so its test subjects are unseen in
# training). Sets LARGE_QA to its directory.
large_qa_records() {
  LARGE_QA=data/facts_qa_large
  "$BIN/python" -m mendlight.data.builders.facts --out "$LARGE_QA" --prompt-style question --n-cities 10000
}
