"""``mendlight edit``: apply edits from the command line or a JSONL file and show what changed."""

from __future__ import annotations

from pathlib import Path

import torch

from mendlight.data.records import EditRecord, read_records
from mendlight.editors.base import Editor
from mendlight.errors import UserInputError
from mendlight.editors.evaluation import prompt_inputs, record_rows
from mendlight.models.functional import save_edited


class EditCommandError(UserInputError, ValueError):
    """Bad arguments to ``mendlight edit``; the message says what to pass."""


def _records(
    prompt: str | None, target: str | None, rephrases: list[str], file: str | None
) -> list[EditRecord]:
    if file:
        if prompt or target:
            raise EditCommandError("give either --file or --prompt/--target, not both")
        return read_records(file)
    if not prompt or not target:
        raise EditCommandError("mendlight edit needs --prompt and --target (or --file edits.jsonl)")
    return [EditRecord(prompt=prompt, target_new=target, rephrases=rephrases, id="cli")]


def load_editor_checkpoint(model: Editor, ckpt_path: str, weights_only: bool = True) -> None:
    """Load a trained editor checkpoint (editor weights, α and normalisation statistics) into ``model``."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise EditCommandError(
            f"checkpoint {ckpt_path!r} does not exist (look in runs/<name>/version_N/checkpoints)"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])


def run_edit(
    model: Editor,
    datamodule,
    *,
    ckpt_path: str | None,
    prompt: str | None,
    target: str | None,
    rephrases: list[str],
    file: str | None,
    save: str | None,
    overwrite: bool = False,
    max_new_tokens: int | None = None,
    weights_only: bool = True,
) -> dict:
    """Apply the edits (all records together), print pre/post greedy outputs, optionally save the model."""
    if datamodule is None:
        raise EditCommandError("mendlight edit needs a data module for tokenisation (pass -c <config>)")
    records = _records(prompt, target, rephrases, file)
    if ckpt_path:
        load_editor_checkpoint(model, ckpt_path, weights_only)
    elif model.requires_training:
        raise EditCommandError(
            f"{type(model).__name__} must be trained first: pass --ckpt_path "
            "runs/<name>/version_N/checkpoints/last.ckpt (from `mendlight fit`)"
        )
    model.eval()
    model.attach_datamodule(datamodule)
    batch = datamodule.make_batch(records, train=False)
    out = model.evaluate_batch(batch)
    deltas = model._last_deltas
    rows = record_rows(batch, out)
    tok = model.tokenizer
    report = []
    for group in ("edit", "equiv"):
        rows_g = batch[group]
        if not rows_g["input_ids"].shape[0]:
            continue
        ids, mask = prompt_inputs(rows_g)
        pre = model.greedy_outputs(rows_g, model.pre_edit_deltas(), max_new_tokens)
        post = model.greedy_outputs(rows_g, deltas, max_new_tokens)
        for r in range(ids.shape[0]):
            text = tok.decode(ids[r][mask[r].bool()], skip_special_tokens=True)
            report.append(
                {
                    "kind": "edit" if group == "edit" else "rephrase",
                    "prompt": text,
                    "pre": pre[r],
                    "post": post[r],
                }
            )
    print(f"\nApplied {len(records)} edit(s) with {type(model).__name__} in {out.latency_s * 1000:.0f} ms")
    for rec, row in zip(records, rows, strict=True):
        print(
            f"  {rec.prompt!r} -> {rec.target_new!r}: target is the argmax: "
            f"{'yes' if row['es_edit'] else 'no'}"
            + (f"; rephrases {row['equiv_success']}/{row['equiv_total']}" if row["equiv_total"] else "")
        )
    for item in report:
        print(f"\n[{item['kind']}] {item['prompt']}\n  before: {item['pre']!r}\n  after:  {item['post']!r}")
    saved = None
    if save:
        saved = str(save_edited(model.base, tok, deltas, save))
        print(f"\nSaved the edited model to {saved} (load it with transformers' from_pretrained)")
    return {"rows": rows, "outputs": report, "saved": saved, "latency_s": out.latency_s}
