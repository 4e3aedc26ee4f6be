"""The prompts of ``mendlight edit``'s locality check: answers an edit should leave alone.

After an edit, ``mendlight edit`` shows the unedited and the edited model's greedy answers for a few prompts
the edit should *not* change, and marks each answer that changed (:mod:`mendlight.preview`). The prompts
come from, in order of preference:

1. ``--check "prompt"`` (repeatable): exactly those prompts (kind ``check``);
2. the edit records' own ``locality`` items (``--file`` records that carry them; kind ``locality``);
3. the configured dataset's test records: ``n`` prompts of the edited fact's relation (kind
   ``same relation``, the neighbours an edit most often breaks) and ``n`` prompts of other relations, one per
   relation (kind ``unrelated``). The edit's relation is the records' ``relation`` when the edit comes from
   records that name it, else the relation of the dataset record whose prompt template the edit prompt
   fits (the record's prompt with its subject cut out), else of the most similar dataset prompt (difflib
   ratio at least :data:`MIN_SIMILARITY`). Records without relations give ``unrelated`` prompts only.

Prompts that are an edit's prompt or rephrase, or that mention an edited subject, are never chosen.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from mendlight.data.records import EditRecord, read_records
from mendlight.errors import UserInputError

#: The least difflib ratio between the edit prompt and a dataset prompt for their relation to count as one.
MIN_SIMILARITY = 0.6
#: The dataset split whose records the check draws from.
CHECK_SPLIT = "test"


@dataclass
class CheckPlan:
    """The locality check's prompts and where they came from.

    Args:
        prompts: ``(kind, prompt)`` pairs, in the order they are shown.
        source: ``--check``, ``the records' locality items``, ``the dataset's test records`` or ``none``.
        relation: the edit's relation when it was found (dataset prompts only), else None.
        note: why some kind of prompt is missing, if it is.

    """

    prompts: list[tuple[str, str]] = field(default_factory=list)
    source: str = "none"
    relation: str | None = None
    note: str | None = None


def dataset_records(datamodule, split: str = CHECK_SPLIT) -> tuple[list[EditRecord], str | None]:
    """The records of the data module's ``split``, or ``[]`` and why none are available.

    A split the data module has loaded is used as it is; otherwise its file is read without tokenising
    every record (an embedded dataset is built once if needed), keeping the first ``max_eval_records``.
    """
    try:
        if split in getattr(datamodule, "splits", {}):
            return datamodule.records(split), None
        records = read_records(Path(datamodule.dataset_dir()) / f"{split}.jsonl")
        limit = datamodule.hparams.get("max_eval_records")
        return (records if limit is None else records[:limit]), None
    except (UserInputError, OSError, ValueError, KeyError) as err:
        return [], f"the dataset's {split} records could not be read ({err})"


def _template(record: EditRecord) -> tuple[str, str] | None:
    """The record's prompt around its subject, ``(before, after)``, if the prompt names the subject."""
    if not record.subject or record.subject not in record.prompt:
        return None
    before, _, after = record.prompt.partition(record.subject)
    return before, after


def _fits(prompt: str, template: tuple[str, str]) -> bool:
    before, after = template
    return len(prompt) > len(before) + len(after) and prompt.startswith(before) and prompt.endswith(after)


def edit_relation(edits: list[EditRecord], pool: list[EditRecord]) -> str | None:
    """The relation of the edited fact(s) (see the module doc), or None if no dataset relation fits."""
    named = [r.relation for r in edits if r.relation]
    if named:
        return named[0]
    related = [r for r in pool if r.relation]
    prompt = edits[0].prompt
    fitting = [r for r in related if (t := _template(r)) is not None and _fits(prompt, t)]
    if fitting:
        return max(fitting, key=lambda r: len(r.prompt) - len(r.subject or "")).relation
    scored = [(difflib.SequenceMatcher(None, prompt, r.prompt).ratio(), r.relation) for r in related]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= MIN_SIMILARITY else None


def _usable(prompt: str, edits: list[EditRecord]) -> bool:
    """Not an edit prompt or rephrase, and naming none of the edited subjects."""
    edited = {p for r in edits for p in (r.prompt, *r.rephrases)}
    subjects = [r.subject for r in edits if r.subject]
    return bool(prompt) and prompt not in edited and not any(s in prompt for s in subjects)


def dataset_prompts(edits: list[EditRecord], pool: list[EditRecord], n: int) -> CheckPlan:
    """``n`` same-relation and ``n`` unrelated prompts from the dataset records ``pool``."""
    candidates = [r for r in pool if _usable(r.prompt, edits)]
    relation = edit_relation(edits, pool)
    note = None
    same = [r.prompt for r in candidates if relation is not None and r.relation == relation][:n]
    if relation is None:
        note = "no same-relation prompts: the edit prompt fits no relation of the dataset"
    elif not same:
        note = f"no other prompt of the relation {relation!r} in the dataset's {CHECK_SPLIT} records"
    unrelated: list[str] = []
    seen: set[str | None] = {relation} if relation is not None else set()
    for record in candidates:  # one prompt per other relation first, then any
        if len(unrelated) < n and record.relation not in seen and record.relation is not None:
            unrelated.append(record.prompt)
            seen.add(record.relation)
    if len(unrelated) < n:  # records without relations: their locality items
        items = [it.prompt for r in pool for it in r.locality if _usable(it.prompt, edits)]
        unrelated += [p for p in items if p not in unrelated][: n - len(unrelated)]
    prompts = [("same relation", p) for p in same] + [("unrelated", p) for p in unrelated]
    return CheckPlan(prompts, f"the dataset's {CHECK_SPLIT} records", relation, note)


def plan_check(edits: list[EditRecord], checks: list[str], datamodule, n: int) -> CheckPlan:
    """The locality check of an edit: ``--check`` prompts, the records' locality items, or dataset prompts.

    Args:
        edits: the edit records.
        checks: the ``--check`` prompts (used alone when given).
        datamodule: the configured data module (its test records are read only when needed).
        n: prompts of each kind drawn from the records or the dataset; 0 turns that part off.

    """
    if checks:
        return CheckPlan([("check", p) for p in checks], "--check")
    if n <= 0:
        return CheckPlan(note="off (--n_check 0)")
    own = [it.prompt for r in edits for it in r.locality if _usable(it.prompt, edits)]
    if own:
        return CheckPlan([("locality", p) for p in own[: 2 * n]], "the records' locality items")
    pool, why = dataset_records(datamodule)
    if not pool:
        return CheckPlan(note=why or f"the dataset has no {CHECK_SPLIT} records")
    return dataset_prompts(edits, pool, n)
