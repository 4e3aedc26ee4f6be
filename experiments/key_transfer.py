"""How much of a least-squares edit reaches the rephrases, per layer and weight, as the number of edits grows.

MALMEN's update of one weight is the ridge solution ``ΔW = (KᵀK + λI)⁻¹ KᵀV`` for the keys ``K`` (the weight's
inputs at the answer tokens of the k edit prompts) and value shifts ``V``. At a rephrase's key ``u'`` it
changes the weight's output by ``u'ᵀΔW = h(u')ᵀ V`` with ``h(u') = K (KᵀK + λI)⁻¹ u'``: a mix of every
key's value shift. The rephrase gets its own edit's shift only as far as ``h`` weighs the matching key (the
edit prompt's key at the same answer token), and the other keys' shifts as cross-talk. Both depend on the
keys alone, so this script measures them on the *unedited* model, for any weight, without a trained editor:

* ``transfer``: the mean over rephrase tokens of ``h(u')[m]``, the weight of the matching edit key (1 at
  best: the rephrase moves as its edit prompt does);
* ``cross-talk``: the mean of ``‖h(u')‖`` over the other edits' keys (the spread of the other edits'
  shifts that lands on the rephrase, for value shifts of equal size and independent directions);
* ``own fit``: the same weight ``h(u)[m]`` at the edit key itself (what of its shift the edit prompt gets).

At k = 1 only the angle between ``u'`` and ``u`` matters; as k grows the solve must tell the keys apart, and
what separates them may be the wording rather than the fact. The keys are the inputs of ``up_proj`` (the MLP
input, shared with ``gate_proj``) and of ``down_proj`` (the MLP's hidden activations) in every block of the
embedded SmolLM2-135M, at MALMEN's trained regulariser e^λ ≈ 1 and near the least-squares limit.

With ``--whiten train`` the keys are first whitened by the second moment ``C₀ = E[kkᵀ]`` of the same keys
of training-split edits (``k → L⁻¹k`` for ``C₀ = LLᵀ``, a small ridge added): the solve then minimises
``‖KΔW − V‖² + λ·tr(ΔWᵀC₀ΔW)``, MEMIT's regulariser, which spares the directions every edit of the corpus
shares (the question templates) and separates edits by what is particular to each. The regulariser keeps its
strength relative to the keys' size (λ divided by ``tr(C₀)/d``).

Usage:
    python experiments/key_transfer.py [--ks 1 25 125 500] [--split val] [--keys answer|subject]
        [--whiten none|train] [--whiten-records 2000] [--out experiments/results/X]

Writes ``OUT.md`` and ``OUT.json`` (with the command, commit, date and machine) when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch

from mendlight.data.batch import model_inputs
from mendlight.data.module import EditDataModule
from mendlight.models.loading import load_base_model
from mendlight.reporting import write_measurement

KINDS = ("up_proj", "down_proj")  # gate_proj reads the same input as up_proj


def capture_keys(
    model: torch.nn.Module, rows: dict, positions: torch.Tensor, chunk: int = 32
) -> dict[str, list[torch.Tensor]]:
    """Every block's ``up_proj``/``down_proj`` inputs at each row's ``positions`` (a ``[rows, T]`` mask).

    Returns ``{weight name: [keys of row i, [n_i, d]]}``.
    """
    names = [n for n, _ in model.named_modules() if n.rsplit(".", 1)[-1] in KINDS]
    out: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    current: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(n).register_forward_pre_hook(
            lambda _m, args, n=n: current.__setitem__(n, args[0])
        )
        for n in names
    ]
    try:
        with torch.no_grad():
            for start in range(0, rows["input_ids"].shape[0], chunk):
                part = {
                    key: value[start : start + chunk] for key, value in rows.items() if key != "edit_index"
                }
                model(**model_inputs(part))
                scored = positions[start : start + chunk]
                for name in names:
                    out[name].extend(current[name][i][scored[i]].float() for i in range(scored.shape[0]))
    finally:
        for hook in hooks:
            hook.remove()
    return out


def subject_positions(rows: dict, texts: list[str], subjects: list[str | None], encoder) -> torch.Tensor:
    """A ``[rows, T]`` mask with the last token of each row's subject (none where the subject is not found).

    Row i starts with the tokens of ``texts[i]`` (its prompt or rephrase); the position is the data
    encoder's (:meth:`~mendlight.data.encoding.RowEncoder.subject_position`), as for the edit rows.
    """
    mask = torch.zeros_like(rows["input_ids"], dtype=torch.bool)
    for i, (text, subject) in enumerate(zip(texts, subjects, strict=True)):
        position = encoder.subject_position(rows["input_ids"][i].tolist(), text, subject)
        if position >= 0:
            mask[i, position] = True
    return mask


def key_positions(batch: dict, keys: str, encoder) -> torch.Tensor:
    """The ``[rows, T]`` mask of a batch's edit rows where the keys are read: answer or subject tokens."""
    if keys == "answer":
        return batch["edit"]["labels"] != -100
    meta = batch["meta"]
    return subject_positions(batch["edit"], meta["prompts"], meta["subjects"], encoder)


def mix_weights(keys: torch.Tensor, queries: torch.Tensor, lam: float) -> torch.Tensor:
    """``h(q) = K (KᵀK + λI)⁻¹ q = (KKᵀ + λI)⁻¹ K q`` for every query row: ``[n_queries, n_keys]``.

    The second form (an n_keys × n_keys solve) is the cheaper one while there are fewer keys than dimensions.
    """
    if keys.shape[0] < keys.shape[1]:
        gram = keys @ keys.T + lam * torch.eye(keys.shape[0], dtype=keys.dtype)
        return torch.linalg.solve(gram, keys @ queries.T).T
    gram = keys.T @ keys + lam * torch.eye(keys.shape[1], dtype=keys.dtype)
    return torch.linalg.solve(gram, queries.T).T @ keys.T


def whitener(samples: torch.Tensor, ridge: float = 1e-2) -> tuple[torch.Tensor, float]:
    """``(L⁻ᵀ, tr(C₀)/d)`` for ``C₀ = E[kkᵀ] + ridge·tr(C₀)/d·I = LLᵀ`` of the sample keys ``[n, d]``.

    Key rows multiplied by ``L⁻ᵀ`` have second moment (close to) the identity; a ridge solve on them is the
    solve under the regulariser ``λ·tr(ΔWᵀC₀ΔW)`` on the raw keys, read at raw queries the same way.
    """
    x = samples.double()
    c0 = x.T @ x / x.shape[0]
    scale = float(c0.trace()) / c0.shape[0]
    eye = torch.eye(c0.shape[0], dtype=c0.dtype)
    lower = torch.linalg.cholesky(c0 + ridge * scale * eye)
    return torch.linalg.solve_triangular(lower, eye, upper=False).T, scale


def measure_group(edit_keys: list[torch.Tensor], rephrase_keys: list[tuple[int, torch.Tensor]], lam: float):
    """Transfer, cross-talk and own fit of one group of edits (one solve) at regulariser ``lam``."""
    keys = torch.cat(edit_keys).double()
    offsets = torch.tensor([0] + [len(k) for k in edit_keys]).cumsum(0)
    owner = torch.repeat_interleave(torch.arange(len(edit_keys)), offsets.diff())
    queries, matches, query_owner = [], [], []
    for edit, rephrase in rephrase_keys:
        if len(rephrase) != len(edit_keys[edit]):  # the target tokenised differently: no token match
            continue
        queries.append(rephrase.double())
        matches.append(offsets[edit] + torch.arange(len(rephrase)))
        query_owner.append(torch.full((len(rephrase),), edit))
    if not queries:
        return None
    match = torch.cat(matches)
    weights = mix_weights(keys, torch.cat(queries), lam)
    own_match = weights[torch.arange(len(match)), match]
    others = weights * (owner[None, :] != torch.cat(query_owner)[:, None])  # the other edits' keys only
    fit = mix_weights(keys, keys, lam).diagonal()
    return float(own_match.mean()), float(others.norm(dim=1).mean()), float(fit.mean())


def measure(
    ks: list[int],
    split: str,
    lambdas: dict[str, float],
    singles: int,
    model_ref: str = "smollm2-135m",
    keys: str = "answer",
    whiten: str = "none",
    whiten_records: int = 2000,
) -> list[dict]:
    """One row per (k, weight, regulariser): the mean over the groups of k edits of one batch of max(ks)."""
    model = load_base_model(model_ref).eval()
    n = max(ks)
    data = EditDataModule(
        dataset="facts-qa", tokenizer=model_ref, eval_n_edits=n, max_eval_records=n, n_loc=1, max_length=64
    )
    data.prepare_data()
    data.setup("fit" if split == "val" else "test")
    loader = data.val_dataloader() if split == "val" else data.test_dataloader()
    batch = next(iter(loader))
    owner = batch["equiv"]["edit_index"].tolist()
    whitening = {}
    if whiten == "train":
        if "train" not in data.splits:
            data.setup("fit")
        train = data.make_batch(data.records("train")[:whiten_records], train=False)
        samples = capture_keys(model, train["edit"], key_positions(train, keys, data.encoder))
        whitening = {name: whitener(torch.cat(found)) for name, found in samples.items()}
        print(f"whitening by the keys of {len(train['meta']['ids'])} training edits", flush=True)
    if keys == "answer":
        edit = capture_keys(model, batch["edit"], batch["edit"]["labels"] != -100)
        rephrase = capture_keys(model, batch["equiv"], batch["equiv"]["labels"] != -100)
    else:
        meta = batch["meta"]
        subjects = meta["subjects"]
        edit_mask = key_positions(batch, keys, data.encoder)
        edit = capture_keys(model, batch["edit"], edit_mask)
        rephrase_texts = [text for texts in meta["rephrases"] for text in texts]  # the equiv rows, in order
        rephrase_subjects = [subjects[o] for o in owner]
        rephrase = capture_keys(
            model,
            batch["equiv"],
            subject_positions(batch["equiv"], rephrase_texts, rephrase_subjects, data.encoder),
        )
        n_rephrases = sum(len(k) for k in next(iter(rephrase.values())))
        print(
            f"subject found in {int(edit_mask.sum())} of {len(subjects)} edit prompts, {n_rephrases} of "
            f"{len(owner)} rephrases",
            flush=True,
        )
    for name, (transform, _) in whitening.items():
        edit[name] = [key.double() @ transform for key in edit[name]]
        rephrase[name] = [key.double() @ transform for key in rephrase[name]]
    rows = []
    for k in ks:
        if k == 1:
            groups = [range(i, i + 1) for i in range(min(singles, n))]
        else:
            groups = [range(s, s + k) for s in range(0, n - k + 1, k)]  # whole groups of the batch
        for name in edit:
            for lam_name, lam in lambdas.items():
                results = []
                for group in groups:
                    local = {e: i for i, e in enumerate(group)}
                    pairs = [(local[o], rephrase[name][r]) for r, o in enumerate(owner) if o in local]
                    strength = lam / whitening[name][1] if whitening else lam  # λ relative to |k|²
                    result = measure_group([edit[name][e] for e in group], pairs, strength)
                    if result is not None:
                        results.append(result)
                if not results:  # no rephrase with a token match in any group
                    raise SystemExit(f"k = {k}, {name}: no rephrase whose target tokens match its edit's")
                mean = [sum(r[i] for r in results) / len(results) for i in range(3)]
                block, kind = name.split(".")[2], name.rsplit(".", 1)[-1]
                rows.append(
                    {
                        "k": k,
                        "block": int(block),
                        "weight": kind,
                        "lambda": lam_name,
                        "groups": len(results),
                        "transfer": mean[0],
                        "cross_talk": mean[1],
                        "own_fit": mean[2],
                    }
                )
        print(f"k = {k} done", flush=True)
    return rows


def table(rows: list[dict], lam: str) -> str:
    """A markdown table at one regulariser: a line per block, transfer / cross-talk per k and weight."""
    ks = sorted({r["k"] for r in rows})
    head = " | ".join(f"{w} k={k}" for w in KINDS for k in ks)
    lines = [f"| block | {head} |", "|---|" + "---|" * (len(KINDS) * len(ks))]
    index = {(r["k"], r["block"], r["weight"]): r for r in rows if r["lambda"] == lam}
    for block in sorted({r["block"] for r in rows}):
        cells = []
        for weight in KINDS:
            for k in ks:
                r = index[(k, block, weight)]
                cells.append(f"{r['transfer']:.2f} / {r['cross_talk']:.2f}")
        lines.append(f"| {block} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, measure and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 25, 125, 500])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--singles", type=int, default=100, help="edits measured one at a time for k = 1")
    parser.add_argument("--model", default="smollm2-135m", help="base model reference (and its tokenizer)")
    parser.add_argument(
        "--keys",
        choices=("answer", "subject"),
        default="answer",
        help="answer: the inputs at the answer tokens (MALMEN's keys); subject: at the last token of the "
        "record's subject in the prompt and in each rephrase (where ROME and MEMIT key their edits)",
    )
    parser.add_argument(
        "--whiten",
        choices=("none", "train"),
        default="none",
        help="train: whiten the keys by the second moment of the same keys of training-split edits "
        "(MEMIT's covariance regulariser)",
    )
    parser.add_argument("--whiten-records", type=int, default=2000, help="training edits for --whiten train")
    parser.add_argument("--out", help="path prefix of OUT.md and OUT.json")
    args = parser.parse_args(argv)
    if args.singles < 1 or min(args.ks) < 1:
        parser.error("--ks and --singles take positive integers")
    lambdas = {"e^λ = 1 (trained)": 1.0, "e^λ = 1e-3": 1e-3}
    if args.whiten_records < 1:
        parser.error("--whiten-records takes a positive integer")
    rows = measure(
        args.ks, args.split, lambdas, args.singles, args.model, args.keys, args.whiten, args.whiten_records
    )
    text = "\n\n".join(f"### {lam}: transfer / cross-talk\n\n{table(rows, lam)}" for lam in lambdas)
    print(text)
    if args.out:
        title = "Least-squares edits: how much reaches the rephrases (unedited SmolLM2-135M, facts-qa)"
        write_measurement(
            args.out,
            title,
            shlex.join(["python", "experiments/key_transfer.py", *(argv or sys.argv[1:])]),
            text,
            rows,
        )


if __name__ == "__main__":
    main()
