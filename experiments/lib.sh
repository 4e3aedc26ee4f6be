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
