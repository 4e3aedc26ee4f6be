"""The report of ``mendlight edit``: one JSON-ready object, printed as text or as JSON (``--json``).

The object (also written to ``edit.json`` in the run directory) holds:

* ``editor``, ``base_model``, ``ckpt_path``;
* ``edits``: per edit record its ``prompt``, ``target``, ``target_is_argmax`` and rephrase success;
* ``previews``: the edit prompts and rephrases with the greedy answer before (``pre``) and after (``post``)
  the edit and whether it ``changed`` (:class:`~mendlight.preview.Preview`);
* ``locality_check``: ``source``, ``relation``, ``note``, ``prompts`` (previews that the edit should leave
  alone), ``changed`` and ``total``;
* ``timings``: seconds of the edit (``edit_s``); of the greedy answers before and after it (``preview_s``:
  the edit prompts, rephrases and locality-check prompts, decoded in one batch per model); of choosing and
  encoding the locality-check prompts (``check_s``); and in all (``total_s``);
* ``saved`` (the ``--save`` directory or null) and ``run`` (the run directory or null).
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from mendlight.data.records import EditRecord
from mendlight.locality_check import CheckPlan
from mendlight.preview import Preview


def edit_rows(records: list[EditRecord], rows: list[dict]) -> list[dict]:
    """Per edit record: prompt, target, whether the target is the argmax, rephrases that succeeded."""
    return [
        {
            "id": rec.id,
            "prompt": rec.prompt,
            "target": rec.target_new,
            "target_is_argmax": bool(row["es_edit"]),
            "rephrases_success": int(row["equiv_success"]),
            "rephrases_total": int(row["equiv_total"]),
        }
        for rec, row in zip(records, rows, strict=True)
    ]


def check_section(plan: CheckPlan, checks: list[Preview]) -> dict:
    """The ``locality_check`` part of the report."""
    return {
        "source": plan.source,
        "relation": plan.relation,
        "note": plan.note,
        "changed": sum(c.changed for c in checks),
        "total": len(checks),
        "prompts": [c.to_dict() for c in checks],
    }


def print_text(report: dict, out: TextIO | None = None) -> None:
    """Print the report for a person: edits, previews, the locality check, timings, where it was saved."""
    out = out or sys.stdout
    timings = report["timings"]
    edits = report["edits"]
    print(
        f"\nApplied {len(edits)} edit(s) with {report['editor']} in {timings['edit_s'] * 1000:.0f} ms",
        file=out,
    )
    for e in edits:
        rephrases = (
            f"; rephrases {e['rephrases_success']}/{e['rephrases_total']}" if e["rephrases_total"] else ""
        )
        argmax = "yes" if e["target_is_argmax"] else "no"
        print(f"  {e['prompt']!r} -> {e['target']!r}: target is the argmax: {argmax}{rephrases}", file=out)
    for p in report["previews"]:
        print(f"\n[{p['kind']}] {p['prompt']}\n  before: {p['pre']!r}\n  after:  {p['post']!r}", file=out)
    check = report["locality_check"]
    if check["total"]:
        where = check["source"] + (f", relation {check['relation']!r}" if check["relation"] else "")
        print(f"\nLocality check ({where}): {check['changed']} of {check['total']} answers changed", file=out)
        for p in check["prompts"]:
            if p["changed"]:
                answer = f"{p['pre']!r} -> {p['post']!r}  CHANGED"
            else:
                answer = f"{p['pre']!r} (unchanged)"
            print(f"  [{p['kind']}] {p['prompt']!r}: {answer}", file=out)
    if check["note"]:
        print(f"\nLocality check: {check['note']}", file=out)
    print(
        f"\nTimings: edit {timings['edit_s'] * 1000:.0f} ms, previews {timings['preview_s'] * 1000:.0f} ms, "
        f"choosing check prompts {timings['check_s'] * 1000:.0f} ms, in all {timings['total_s']:.2f} s",
        file=out,
    )
    if report["saved"]:
        print(
            f"\nSaved the edited model to {report['saved']} (load it with transformers' from_pretrained)",
            file=out,
        )


def print_json(report: dict, out: TextIO | None = None) -> None:
    """Print the report as one JSON object (strict JSON, indented)."""
    print(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False), file=out or sys.stdout)
