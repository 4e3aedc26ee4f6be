#!/usr/bin/env bash
# Objective choices of MEND training on question answering (issue #13 item 4), each a short run from
# configs/smollm2_qa.yaml, compared on the same validation records:
#   base            the config as it is (locality KL over the whole input, equivalence row from the prompt and
#                   rephrases, 2 locality rows, rank 256, Adam lr 1e-4, one edit per step)
#   loc_kl_answer   the locality KL over the answer tokens only
#   equiv_rephrases the equivalence row from the rephrases only
#   n_loc1          one locality row per edit
#   rank1920        the paper's rank
#   k4              four independent edits per step (independent_edits), lr 1e-4 as base
#   paper_lr        the paper's lr 1e-6 with 10 edits per step (independent_edits)
#   bf16            base trained with bf16 autocast (--trainer.precision bf16-mixed; not in the default set:
#                   the precision check of experiments/bench_train.md, validated in float32 as well)
# Usage: [STEPS=N] [VAL=N] bash experiments/objective_ablations.sh [variant[:steps] ...]
# (default: every variant, paper_lr with 100 steps — 1,000 edits, about the wall time of 500 single-edit
# steps —, the others with STEPS (500); VAL 200 validation records, validated once at the end). A finished run
# of a variant is reused (delete runs/ablation_<variant> to retrain). Writes
# experiments/results/objective_ablations.{md,json}.
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
  [k4]="--model.init_args.independent_edits true --data.init_args.n_edits 4"
  [paper_lr]="--model.init_args.optimizer.init_args.lr 1e-6 --model.init_args.independent_edits true --data.init_args.n_edits 10"
  [bf16]="--trainer.precision bf16-mixed"
)
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(base loc_kl_answer equiv_rephrases n_loc1 rank1920 k4 paper_lr:100)
runs=()
for spec in "${variants[@]}"; do
  v=${spec%%:*}
  n=$steps
  [ "$spec" != "$v" ] && n=${spec#*:}
  [ -n "${EXTRA[$v]+set}" ] || { echo "unknown variant $v" >&2; exit 2; }
  # shellcheck disable=SC2086
  ensure_fit "ablation_$v" configs/smollm2_qa.yaml -- --trainer.logger.init_args.name "ablation_$v" \
    --trainer.max_steps "$n" --trainer.val_check_interval "$n" --trainer.limit_val_batches "$val" \
    --trainer.max_time null ${EXTRA[$v]}
  runs+=("$v=$FIT_RUN")
done
"$BIN/python" - "$steps" "$val" "${runs[@]}" <<'EOF'
import json, sys
import yaml
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
    config = yaml.safe_load(open(f"{run}/config.yaml"))
    per_step = config["data"]["init_args"]["n_edits"]
    rows.append({"variant": name, "run": run, **last, "train_time_s": fit.get("train_time_s"),
                 "validation_share": fit.get("validation_share"), "global_step": fit["global_step"],
                 "edits_per_step": per_step, "edits_trained": per_step * fit["global_step"]})
import datetime
info = machine_info()
info["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
machine = f"{info['platform']}, {info['cpu_count']} CPUs, torch {info['torch']}, {info['device']}"
head = ("| variant | steps × edits | ES | ES (edit) | ES (rephrase) | acc DD | locality | val loss "
        "| train time (s) |")
lines = [
    f"# Objective choices on question answering (short runs, {val} validation records)",
    "",
    f"- command: `STEPS={steps} VAL={val} bash experiments/objective_ablations.sh`",
    f"- measured: {info['date']} on {machine}, commit {info['commit']}",
    "",
    head,
    "|---|---|---|---|---|---|---|---|---|",
]
for r in rows:
    cells = [r.get(k) for k in keys]
    lines.append(f"| {r['variant']} | {r['global_step']} × {r['edits_per_step']} | " + " | ".join("" if c is None else f"{c:.3f}" for c in cells)
                 + f" | {r['train_time_s'] or 0:.0f} |")
text = "\n".join(lines) + "\n"
open("experiments/results/objective_ablations.md", "w").write(text)
json.dump({"provenance": info, "steps": int(steps), "val_records": int(val), "rows": rows},
          open("experiments/results/objective_ablations.json", "w"), indent=2)
print(text)
EOF
