"""Attaching locality items to converted records, deterministically.

The public formats differ in where locality comes from (docs/algorithm.md §5): zsRE trains with *other
zsRE questions* and their gold answers and validates with Natural Questions; FEVER uses other claims with
their gold labels; Wikitext uses unrelated passages; CounterFact ships its own neighbourhood prompts.
Converters build a pool of :class:`~mendlight.data.records.LocalityItem` and call :func:`attach_locality`,
which gives every record ``n`` items drawn from the pool with an RNG seeded by ``(seed, record id)``: a
record gets the same items whatever other records the file holds or in which order they come.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mendlight.data.records import EditRecord, LocalityItem


def dataset_locality(records: Sequence[EditRecord]) -> list[LocalityItem]:
    """The in-dataset locality pool: each record's prompt with its old (true) target as the answer.

    This is MEND's training locality for zsRE and FEVER (other examples of the dataset, scored against
    their gold answers or labels). Records without ``target_true`` are skipped.
    """
    return [LocalityItem(r.prompt, r.target_true) for r in records if r.target_true is not None]


def _excluded(record: EditRecord, item: LocalityItem) -> bool:
    """Whether ``item`` is the edit itself (its prompt is the record's prompt or a rephrase)."""
    return item.prompt != "" and (item.prompt == record.prompt or item.prompt in record.rephrases)


def attach_locality(
    records: Sequence[EditRecord], pool: Sequence[LocalityItem], n: int, seed: int = 0
) -> list[EditRecord]:
    """Append ``n`` locality items from ``pool`` to every record, in place, and return the records.

    Each record draws its items without replacement from ``random.Random(f"{seed}/loc/{record.id}")``
    (the record's prompt and rephrases never count as its own locality), so the result does not depend on
    the other records. A pool smaller than ``n`` gives every usable item. Items already on a record stay
    first.

    Args:
        records: the records (their ids should be unique; see :func:`~.common.unique_ids`).
        pool: the candidate locality items.
        n: items per record; ``0`` attaches nothing.
        seed: the sampling seed.

    Returns:
        ``records`` (changed in place).

    Raises:
        ValueError: if ``n`` is negative.

    """
    if n < 0:
        raise ValueError(f"the number of locality items per record must be >= 0, got {n}")
    if n == 0 or not pool:
        return list(records)
    for index, record in enumerate(records):
        key = record.id if record.id is not None else f"#{index}"
        rng = random.Random(f"{seed}/loc/{key}")
        # Draw a few spares so that skipping the record's own prompt rarely needs a full scan of the pool.
        picks = rng.sample(range(len(pool)), min(len(pool), n + 4))
        chosen = [pool[i] for i in picks if not _excluded(record, pool[i])][:n]
        if len(chosen) < n and len(picks) < len(pool):
            taken = set(picks)
            rest = [i for i in range(len(pool)) if i not in taken and not _excluded(record, pool[i])]
            rng.shuffle(rest)
            chosen += [pool[i] for i in rest[: n - len(chosen)]]
        record.locality = [*record.locality, *chosen]
    return list(records)
