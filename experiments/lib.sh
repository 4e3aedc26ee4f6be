# Shared shell helpers of the experiment scripts (sourced, not run).
# BIN: the virtualenv's bin directory (default .venv/bin).
BIN=${BIN:-.venv/bin}
export PYTHONUNBUFFERED=1

# latest_fit_run STEM: the newest run directory of STEM whose training finished (fit.json says
# "finished": true; a run still going, stopped by a signal or killed says "running" or "stopped").
latest_fit_run() {
  local run
  for run in $(ls -d "runs/$1"/version_* 2>/dev/null | sort -t_ -k2 -n -r); do
    if [ -f "$run/checkpoints/last.ckpt" ] && grep -q '"finished": true' "$run/fit.json" 2>/dev/null; then
      echo "$run"
      return 0
    fi
  done
  return 1
}

# resumable_fit_run STEM: the newest run of STEM that did not finish (killed, stopped) but has a last.ckpt.
resumable_fit_run() {
  local run
  for run in $(ls -d "runs/$1"/version_* 2>/dev/null | sort -t_ -k2 -n -r); do
    if [ -f "$run/checkpoints/last.ckpt" ]; then
      echo "$run"
      return 0
    fi
  done
  return 1
}

# ensure_fit STEM CONFIG... -- [fit args]: reuse the newest trained run of STEM (the run name of the configs
# composed), else resume the newest unfinished one from its last.ckpt (a run killed with the session goes on
# where it stopped), else train one with `mendlight fit -c CONFIG -c ...`. Sets FIT_RUN. With TRAIN=0 nothing
# is trained: it returns 1 when STEM has no finished run.
ensure_fit() {
  local stem=$1
  shift
  local configs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do configs+=(-c "$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  if FIT_RUN=$(latest_fit_run "$stem"); then
    echo "reusing the trained editor in $FIT_RUN (delete it to retrain)"
    return 0
  fi
  [ "${TRAIN:-1}" = 0 ] && return 1
  local resume=()
  if previous=$(resumable_fit_run "$stem"); then
    echo "resuming $previous from its last.ckpt"
    resume=(--ckpt_path "$previous/checkpoints/last.ckpt")
  fi
  "$BIN/mendlight" fit "${configs[@]}" --trainer.enable_progress_bar false "$@" "${resume[@]}"
  FIT_RUN=$(latest_fit_run "$stem")
}

# large_qa_records: build (once) the large question-answering record set used for batched and sequential
# editing (facts-qa with up to 10,000 cities: since the 27-relation corpus, about 32,500 facts over every
# relation; the Table 5 and sequential results in the README were made with the earlier six-relation corpus,
# 10,000 city_country facts). Sets LARGE_QA to its directory.
large_qa_records() {
  LARGE_QA=data/facts_qa_large
  "$BIN/python" -m mendlight.data.builders.facts --out "$LARGE_QA" --prompt-style question --n-cities 10000
}

# trained_row KEY LABEL STEM CONFIG...: when KEY is one of the words of $ROWS_WANTED, the `mendlight table`
# arguments of a trained editor (`--editor "LABEL=<run>"`) are appended to the array TRAINED_EDITORS, the
# editor trained (or resumed) by ensure_fit first if need be; with TRAIN=0 an untrained editor is left out.
TRAINED_EDITORS=()
trained_row() {
  local key=$1 label=$2 stem=$3
  shift 3
  [[ " $ROWS_WANTED " == *" $key "* ]] || return 0
  if ensure_fit "$stem" "$@"; then
    TRAINED_EDITORS+=(--editor "$label=$FIT_RUN")
  else
    echo "== $label: no finished run of $stem and TRAIN=0: left out"
  fi
}
