"""Hand-built edit batches on the byte tokenizer (independent of the data module)."""

import torch

from mendlight.models.tiny import build_byte_tokenizer

TOK = build_byte_tokenizer()


def rows(pairs, pad=0):
    """TokenRows from (prompt, target) pairs: labels aligned with logits (shifted), -100 elsewhere."""
    seqs, labels = [], []
    for prompt, target in pairs:
        p = TOK(prompt)["input_ids"]
        t = TOK(" " + target, add_special_tokens=False)["input_ids"]
        ids = p + t
        lab = [-100] * len(ids)
        for i in range(len(p) - 1, len(ids) - 1):
            lab[i] = ids[i + 1]
        seqs.append(ids)
        labels.append(lab)
    width = max(len(s) for s in seqs)
    return {
        "input_ids": torch.tensor([s + [pad] * (width - len(s)) for s in seqs]),
        "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs]),
        "labels": torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels]),
    }


def batch(edit_pairs, equiv_pairs, loc_pairs, true_pairs=None):
    out = {"edit": rows(edit_pairs), "equiv": rows(equiv_pairs), "loc": rows(loc_pairs)}
    out["equiv"]["edit_index"] = torch.zeros(len(equiv_pairs), dtype=torch.long)
    out["loc"]["edit_index"] = torch.zeros(len(loc_pairs), dtype=torch.long)
    if true_pairs:
        out["true"] = rows(true_pairs)
    out["meta"] = {
        "ids": [f"r{i}" for i in range(len(edit_pairs))],
        "prompts": [p for p, _ in edit_pairs],
        "targets": [t for _, t in edit_pairs],
        "targets_true": [None] * len(edit_pairs),
        "rephrases": [[p for p, _ in equiv_pairs]],
        "loc_prompts": [p for p, _ in loc_pairs],
        "loc_answers": [a for _, a in loc_pairs],
    }
    return out


FACT = batch(
    [("The capital of France is", "Rome")],
    [("France's capital city is", "Rome")],
    [("The currency of Japan is the", "Yen")],
    [("The capital of France is", "Paris")],
)


def five_edits():
    """Five one-word edits with prompts of one width: k = 5 simultaneous edits to cut into chunks."""
    words = ["red", "tall", "cold", "new", "far"]
    return rows([(f"Fact number {i} is about", word) for i, word in enumerate(words)])
