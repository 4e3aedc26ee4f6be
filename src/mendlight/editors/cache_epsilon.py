"""Pick the caching editor's radius ε on the validation split (the paper tunes ε*, Appendix G).

Each validation record is edited on its own, as in the test protocol. For every record the distances from
its edit key to the keys of its rephrases (which should fall within ε) and of its locality inputs (which
should not) are collected once; then every candidate ε gives, without running the model again,

* ``es``: the share of edit inputs and rephrases within ε (edit success, paper Eq. 1, if a match answers
  correctly and a miss does not);
* ``loc_hit``: the share of locality inputs within ε (each one answered with the edit's target, so
  ``loc_hit`` bounds the accuracy drawdown);

and the chosen ε maximises ``es − loc_hit``. From the shell::

    python -m mendlight.editors.cache_epsilon --base_model smollm2-135m --dataset facts-qa
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import torch

from mendlight.editors.cache import Cache


@dataclass
class DistanceProfile:
    """Distances from each validation edit's key to its rephrases' and its locality inputs' keys.

    Attributes:
        n_edits: edits measured (each edit input is at distance 0 from its own key).
        rephrase: distances of the rephrases.
        locality: distances of the locality inputs.

    """

    n_edits: int
    rephrase: torch.Tensor
    locality: torch.Tensor

    def rates(self, epsilon: float) -> tuple[float, float]:
        """``(es, loc_hit)`` at radius ``epsilon`` (see the module doc)."""
        hits = self.n_edits * (epsilon > 0) + int((self.rephrase < epsilon).sum())
        es = hits / max(1, self.n_edits + self.rephrase.numel())
        loc_hit = float((self.locality < epsilon).float().mean()) if self.locality.numel() else 0.0
        return es, loc_hit

    def candidates(self, n: int = 24) -> list[float]:
        """Candidate radii: quantiles of all measured distances (and a little beyond the largest)."""
        every = torch.cat([self.rephrase, self.locality]).float()
        if not every.numel():
            return [1.0]
        qs = torch.linspace(0, 1, n)
        values = torch.quantile(every, qs).tolist() + [float(every.max()) * 1.01]
        return sorted({round(v, 4) for v in values if v > 0})

    def best(self) -> float:
        """The candidate maximising ``es − loc_hit`` (the smallest one on ties)."""
        return max(self.candidates(), key=lambda e: (round(self.rates(e)[0] - self.rates(e)[1], 9), -e))


@torch.no_grad()
def distance_profile(
    cache: Cache, datamodule, split: str = "val", limit: int | None = None
) -> DistanceProfile:
    """Measure :class:`DistanceProfile` of ``split`` (records edited one at a time)."""
    datamodule.setup_split(split)
    records = datamodule.records(split)[:limit]
    n_edits, rephrase, locality = 0, [], []
    for record in records:
        batch = datamodule.make_batch([record], train=False)
        key = cache.keys(batch["edit"])
        n_edits += 1
        for group, out in (("equiv", rephrase), ("loc", locality)):
            if batch[group]["input_ids"].shape[0]:
                out.append(torch.cdist(cache.keys(batch[group]), key).flatten())
    cat = lambda xs: torch.cat(xs) if xs else torch.zeros(0)  # noqa: E731
    return DistanceProfile(n_edits, cat(rephrase), cat(locality))


def pick_epsilon(
    cache: Cache, datamodule, split: str = "val", limit: int | None = None
) -> tuple[float, list]:
    """The best ε on ``split`` and the table ``[(ε, es, loc_hit), ...]`` of every candidate."""
    profile = distance_profile(cache, datamodule, split, limit)
    table = [(e, *profile.rates(e)) for e in profile.candidates()]
    return profile.best(), table


def _json_object(text: str) -> dict:
    """Parse ``--dataset_options``: a JSON object, or an argparse error saying what to pass."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        example = '{"split_by": "relation"}'
        raise argparse.ArgumentTypeError(f"not JSON ({err}); pass an object like '{example}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Print the ε table of a setting and the chosen ε."""
    from mendlight.data import EditDataModule

    parser = argparse.ArgumentParser(
        prog="python -m mendlight.editors.cache_epsilon", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--base_model", default="smollm2-135m", help="base model reference")
    parser.add_argument("--dataset", default="facts", help="dataset (embedded name or records directory)")
    parser.add_argument("--split", default="val", help="split to tune on (default: val)")
    parser.add_argument("--n_loc", type=int, default=2, help="locality items per record")
    parser.add_argument("--max_length", type=int, default=64, help="maximum tokens per row")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N records")
    parser.add_argument(
        "--dataset_options",
        type=_json_object,
        default=None,
        help='options of an embedded dataset\'s builder, as JSON (e.g. \'{"split_by": "relation"}\')',
    )
    args = parser.parse_args(argv)
    dm = EditDataModule(
        dataset=args.dataset,
        tokenizer=args.base_model,
        n_loc=args.n_loc,
        max_length=args.max_length,
        dataset_options=args.dataset_options,
    )
    cache = Cache(base_model=args.base_model)
    best, table = pick_epsilon(cache, dm, args.split, args.limit)
    print(f"{'epsilon':>10} {'es':>7} {'loc_hit':>8} {'es-loc_hit':>11}")
    for eps, es, hit in table:
        print(
            f"{eps:>10.4f} {es:>7.3f} {hit:>8.3f} {es - hit:>11.3f}" + ("   <- chosen" if eps == best else "")
        )
    print(f"chosen epsilon: {best}  (pass --model.init_args.epsilon {best})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
