#!/usr/bin/env bash
# Objective choices of MEND training on question answering (issue #13 item 4), each a short run from
# configs/smollm2_qa.yaml, compared on the same validation records:
#   base            the config as it is (locality KL over the whole input, equivalence row from the prompt and
#                   rephrases, 2 locality rows, rank 256, Adam lr 1e-4, one edit per step)
#   loc_kl_answer   the locality KL over the answer tokens only
#   equiv_rephrases the equivalence row from the rephrases only
#   n_loc1          one locality row per edit
#   rank1920        the paper's rank
#   paper_lr        the paper's lr 1e-6 with 10 edits per step (independent_edits)
# Usage: [STEPS=N] [VAL=N] bash experiments/objective_ablations.sh [variant ...]   (default: all; STEPS 500,
# VAL 200 validation records, validated once at the end). Writes experiments/results/objective_ablations.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
steps=${STEPS:-500}
val=${VAL:-200}
declare -A EXTRA=(
  [base]=""
  [loc_kl_answer]="--model.init_args.loc_kl answer"
  [equiv_rephrases]="--data.init_args.equiv_from rephrases"
  [n_loc1]="--data.init_args.n_loc 1"
  [rank1920]="--model.init_args.rank 1920"
  [paper_lr]="--model.init_args.optimizer.init_args.lr 1e-6 --model.init_args.independent_edits true --data.init_args.n_edits 10"
)
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(base loc_kl_answer equiv_rephrases n_loc1 rank1920 paper_lr)
runs=()
for v in "${variants[@]}"; do
  [ -n "${EXTRA[$v]+set}" ] || { echo "unknown variant $v" >&2; exit 2; }
  # shellcheck disable=SC2086
  ensure_fit "ablation_$v" configs/smollm2_qa.yaml -- --trainer.logger.init_args.name "ablation_$v" \
    --trainer.max_steps "$steps" --trainer.val_check_interval "$steps" --trainer.limit_val_batches "$val" \
    --trainer.max_time null ${EXTRA[$v]}
  runs+=("$v=$FIT_RUN")
done
"$BIN/python" - "$steps" "$val" "${runs[@]}" <<'EOF'
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from mendlight.reporting import machine_info

steps, val, runs = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
keys = ["val/es", "val/es_edit", "val/es_equiv", "val/acc_drawdown", "val/locality", "val/loss"]
rows = []
for name, run in runs:
    acc = EventAccumulator(run, size_guidance={"scalars": 0})
    acc.Reload()
    last = {k: acc.Scalars(k)[-1].value for k in keys if k in acc.Tags()["scalars"]}
    fit = json.load(open(f"{run}/fit.json"))
    rows.append({"variant": name, "run": run, **last, "train_time_s": fit.get("train_time_s"),
                 "validation_share": fit.get("validation_share"), "global_step": fit["global_step"]})
import datetime
info = machine_info()
info["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
machine = f"{info['platform']}, {info['cpu_count']} CPUs, torch {info['torch']}, {info['device']}"
head = "| variant | ES | ES (edit) | ES (rephrase) | acc DD | locality | val loss | train time (s) |"
lines = [
    f"# Objective choices on question answering ({steps} training steps each, {val} validation records)",
    "",
    f"- command: `STEPS={steps} VAL={val} bash experiments/objective_ablations.sh`",
    f"- measured: {info['date']} on {machine}, commit {info['commit']}",
    "",
    head,
    "|---|---|---|---|---|---|---|---|",
]
for r in rows:
    cells = [r.get(k) for k in keys]
    lines.append(f"| {r['variant']} | " + " | ".join("" if c is None else f"{c:.3f}" for c in cells)
                 + f" | {r['train_time_s'] or 0:.0f} |")
text = "\n".join(lines) + "\n"
open("experiments/results/objective_ablations.md", "w").write(text)
json.dump({"provenance": info, "steps": int(steps), "val_records": int(val), "rows": rows},
          open("experiments/results/objective_ablations.json", "w"), indent=2)
print(text)
EOF
