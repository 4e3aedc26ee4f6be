"""How varied the batches of simultaneous edits are: the largest share one prompt template or relation holds.

Batched editing is harder when the k edits of a batch share their wording: MEND sums the k updates, and
updates whose input features coincide add up on every input with those features. A batch drawn from one
relation's question template (every prompt "Q: In which country is {s}? A:") is the hard case; a batch drawn
at random across relations and templates is the ordinary one. The test reports of batched editing therefore
say how mixed their batches were: for each batch of ``k`` consecutive records (the order the evaluation
cuts them in), the largest share of the batch that one template holds, and likewise for one relation.

A record's *template* is its prompt with the subject replaced by ``{s}`` (the prompt itself when the record
names no subject, or the subject does not occur in it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

#: The keys :func:`batch_composition` reads from each row.
TEMPLATE_KEY, RELATION_KEY = "template", "relation"


#: What to do when a subject is not in its prompt (the end of the Python API's and `mendlight edit`'s errors).
SUBJECT_HINT = "give the words of the prompt that name what the fact is about"


def subject_in_prompt(subject: str | None, prompt: str) -> bool:
    """Whether ``subject`` is a non-empty part of ``prompt`` (as subject keys and templates need)."""
    return bool(subject) and subject in prompt


def prompt_template(prompt: str, subject: str | None) -> str:
    """The template of a prompt: the first occurrence of ``subject`` replaced by ``{s}``.

    Args:
        prompt: the edit prompt, e.g. ``"Q: What is the capital of France? A:"``.
        subject: the record's subject (``"France"``), or None.

    Returns:
        ``"Q: What is the capital of {s}? A:"``; the prompt unchanged without a subject found in it.

    """
    if not subject_in_prompt(subject, prompt):
        return prompt
    return prompt.replace(subject, "{s}", 1)  # type: ignore[arg-type]


def _largest_shares(values: Sequence[Any], k: int) -> list[float]:
    """For each consecutive batch of ``k`` values, the share of its most frequent value."""
    shares = []
    for start in range(0, len(values), k):
        batch = values[start : start + k]
        shares.append(Counter(batch).most_common(1)[0][1] / len(batch))
    return shares


def batch_composition(rows: Sequence[Mapping[str, Any]], k: int | None) -> dict[str, Any] | None:
    """The largest share one template (and one relation) holds in each batch of ``k`` consecutive rows.

    Args:
        rows: per-record dicts in evaluation order, with ``"template"`` (and ``"relation"``) as written by
            the editors' test step; rows without a template are not counted.
        k: edits per batch (``protocol["n_edits_per_batch"]``).

    Returns:
        ``{"edits_per_batch": k, "batches": n, "largest_template_share": {"max", "mean"},
        "largest_relation_share": {"max", "mean"} or None}``, or None when ``k`` is unknown or no row names
        a template. A short last batch counts with its own size.

    """
    templated = [r for r in rows if r.get(TEMPLATE_KEY) is not None]
    if not k or k < 1 or not templated:
        return None
    template = _largest_shares([r[TEMPLATE_KEY] for r in templated], k)
    relations = [r.get(RELATION_KEY) for r in templated]
    relation = _largest_shares(relations, k) if all(rel is not None for rel in relations) else None
    return {
        "edits_per_batch": int(k),
        "batches": len(template),
        "largest_template_share": {"max": max(template), "mean": sum(template) / len(template)},
        "largest_relation_share": (
            {"max": max(relation), "mean": sum(relation) / len(relation)} if relation is not None else None
        ),
    }


def composition_line(composition: Mapping[str, Any] | None) -> str | None:
    """One sentence for a Markdown report, e.g. ``"2 batches of 1000 edits; the largest share ..."``."""
    if not composition:
        return None
    template = composition["largest_template_share"]
    line = (
        f"{composition['batches']} batch(es) of {composition['edits_per_batch']} simultaneous edit(s); the "
        f"largest share of one prompt template in a batch: {template['max']:.3f} at most, "
        f"{template['mean']:.3f} on average"
    )
    relation = composition.get("largest_relation_share")
    if relation:
        line += f"; of one relation: {relation['max']:.3f} at most, {relation['mean']:.3f} on average"
    return line + "."
