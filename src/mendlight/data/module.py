"""``EditDataModule``: edit-record splits, tokenisation, and the collate into :class:`EditBatch`.

Splits are JSONL files of :class:`~mendlight.data.records.EditRecord` (``train.jsonl``, ``val.jsonl``,
``test.jsonl``), either in a directory or built offline by the embedded fact builder
(:mod:`mendlight.data.builders.facts`). Every prompt/target pair is tokenised by
:meth:`EditDataModule.encode`, which shifts labels so that they line up with the logits (see
:mod:`mendlight.data.batch`).
"""

from __future__ import annotations

import json
import random
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from mendlight.data.batch import EditBatch, TokenRows
from mendlight.data.records import EditRecord, LocalityItem, read_records
from mendlight.data.sampling import ResumableShuffleSampler

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

SPLITS: tuple[str, ...] = ("train", "val", "test")
EMBEDDED_DATASETS: tuple[str, ...] = ("facts",)
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
IGNORE_INDEX = -100


class EditDataModule(pl.LightningDataModule):
    """Edit records for training and evaluating editors, collated into :class:`EditBatch` objects.

    Training batches hold ``n_edits`` simultaneous edits, each with one equivalence row drawn from its prompt
    and rephrases and ``n_loc`` sampled locality rows; evaluation batches hold every rephrase, the first
    ``n_loc`` locality items, and the old targets. Sampling is reproducible from ``seed``.
    """

    def __init__(
        self,
        dataset: str = "facts",
        tokenizer: str = "smollm2-135m",
        n_edits: int = 1,
        eval_n_edits: int | None = None,
        n_loc: int = 1,
        max_length: int = 64,
        max_train_records: int | None = None,
        max_eval_records: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """Configure the data; nothing is read or tokenised until ``prepare_data``/``setup``.

        Args:
            dataset: ``"facts"`` (the embedded offline fact dataset, built and cached on first use, always
                with its default build seed so that every training seed shares one test set) or a directory
                holding ``train.jsonl``, ``val.jsonl`` and ``test.jsonl`` edit records.
            tokenizer: base-model reference whose tokenizer to use (the CLI links it to the editor's base
                model): an embedded alias such as ``smollm2-135m``, a local directory, a ``.gguf`` file, a
                ``tiny-random-<type>`` name, or a hub name.
            n_edits: simultaneous edits per training batch (k).
            eval_n_edits: simultaneous edits per validation/test batch; defaults to ``n_edits``.
            n_loc: locality rows per edit record (sampled in training, the first ones in evaluation).
            max_length: maximum tokens per row; long prompts are truncated from the left.
            max_train_records: use only the first N training records (quick and debug runs).
            max_eval_records: use only the first N records of the validation and of the test split.
            seed: seed of the training shuffle and of the rephrase/locality sampling.
            num_workers: DataLoader worker processes.

        """
        super().__init__()
        for name, value, low in (
            ("n_edits", n_edits, 1),
            ("eval_n_edits", eval_n_edits, 1),
            ("n_loc", n_loc, 0),
            ("max_length", max_length, 2),
            ("max_train_records", max_train_records, 1),
            ("max_eval_records", max_eval_records, 1),
            ("num_workers", num_workers, 0),
        ):
            if value is not None and value < low:
                raise ValueError(f"EditDataModule: {name} must be at least {low}, got {value}")
        self.save_hyperparameters()
        self.splits: dict[str, Dataset] = {}
        self._train_sampler: ResumableShuffleSampler | None = None
        self._resume: dict[str, int] | None = None

    # ------------------------------------------------------------------ sizes, tokenizer, files

    @property
    def eval_batch_size(self) -> int:
        """Edits per validation/test batch (``eval_n_edits``, defaulting to ``n_edits``)."""
        return self.hparams.eval_n_edits or self.hparams.n_edits

    @property
    def tok(self) -> PreTrainedTokenizerBase:
        """The tokenizer, loaded on first use with :func:`~mendlight.models.loading.load_tokenizer`."""
        from mendlight.models.loading import load_tokenizer

        tok = load_tokenizer(self.hparams.tokenizer)
        if tok.pad_token_id is None:
            raise ValueError(f"tokenizer of {self.hparams.tokenizer!r} has no pad token")
        return tok

    def dataset_dir(self) -> Path:
        """Return the directory of the split files, building the embedded fact dataset if needed."""
        dataset = self.hparams.dataset
        if dataset == "facts":
            from mendlight.data.builders.facts import build_facts

            return build_facts()
        path = Path(dataset).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"dataset {dataset!r} is neither an embedded dataset ({', '.join(EMBEDDED_DATASETS)}) nor a "
                "directory; pass 'facts' or a directory holding train.jsonl, val.jsonl and test.jsonl"
            )
        return path

    def prepare_data(self) -> None:
        """Build the embedded fact dataset once (rank 0 only); a no-op for a records directory."""
        self.dataset_dir()

    def setup(self, stage: str | None = None) -> None:
        """Read and validate the splits this stage needs into HF ``datasets.Dataset`` objects.

        Args:
            stage: ``fit`` (train and val), ``validate`` (val), ``test``/``predict`` (test), or None (all).

        """
        needed = [s for s in _STAGE_SPLITS.get(stage or "", SPLITS) if s not in self.splits]
        if not needed:
            return
        from datasets import Dataset

        root = self.dataset_dir()
        for split in needed:
            path = root / f"{split}.jsonl"
            if not path.is_file():
                raise FileNotFoundError(
                    f"missing split file {path}: the dataset directory must hold train.jsonl, val.jsonl and "
                    "test.jsonl, one JSON edit record per line (see mendlight.data.records)"
                )
            records = read_records(path)
            limit = self.hparams.max_train_records if split == "train" else self.hparams.max_eval_records
            if limit is not None:
                records = records[:limit]
            self.splits[split] = Dataset.from_list([_to_row(r) for r in records])

    def records(self, split: str) -> list[EditRecord]:
        """Return the (possibly truncated) records of a split that ``setup`` has loaded."""
        return [_from_row(row) for row in self._split(split)]

    def _split(self, split: str) -> Dataset:
        if split not in self.splits:
            raise RuntimeError(f"the {split!r} split is not loaded; call setup() first")
        return self.splits[split]

    # ------------------------------------------------------------------ tokenisation and collate

    def encode(self, prompt: str, target: str) -> tuple[list[int], list[int]]:
        """Tokenise a prompt and its target into input ids and logit-aligned labels.

        The prompt gets the tokenizer's default special tokens; the target follows after one space (none if
        the prompt already ends in whitespace), without special tokens. ``labels[i]`` is the token at
        ``i + 1`` on the target span and -100 elsewhere. A prompt too long for ``max_length`` loses tokens
        on its left (a leading BOS is kept).

        Args:
            prompt: the input text.
            target: the text the model should continue it with.

        Returns:
            ``(input_ids, labels)`` of equal length.

        Raises:
            ValueError: if the prompt or target gives no tokens, or the target alone does not fit.

        """
        tok = self.tok
        prompt_ids = list(tok(prompt, add_special_tokens=True)["input_ids"])
        sep = "" if prompt[-1:].isspace() else " "
        target_ids = list(tok(sep + target, add_special_tokens=False)["input_ids"])
        if not prompt_ids:
            raise ValueError(f"prompt {prompt!r} gives no tokens, so nothing can predict the target")
        if not target_ids:
            raise ValueError(f"target {target!r} of prompt {prompt!r} gives no tokens")
        max_length = self.hparams.max_length
        budget = max_length - len(target_ids)
        if budget < 1:
            raise ValueError(
                f"target {target!r} has {len(target_ids)} tokens and does not fit max_length={max_length} "
                "with at least one prompt token; raise max_length or shorten the target"
            )
        if len(prompt_ids) > budget:
            bos = tok.bos_token_id
            if bos is not None and prompt_ids[0] == bos and budget >= 2:
                prompt_ids = [bos] + prompt_ids[len(prompt_ids) - budget + 1 :]
            else:
                prompt_ids = prompt_ids[len(prompt_ids) - budget :]
        input_ids = prompt_ids + target_ids
        labels = [IGNORE_INDEX] * (len(prompt_ids) - 1) + target_ids + [IGNORE_INDEX]
        return input_ids, labels

    def _prompt_only(self, prompt: str) -> tuple[list[int], list[int]]:
        """Tokenise a prompt without a target (every label -100), truncated like :meth:`encode`."""
        ids = list(self.tok(prompt, add_special_tokens=True)["input_ids"])[-self.hparams.max_length :]
        return ids, [IGNORE_INDEX] * len(ids)

    def make_batch(self, records: list[EditRecord], train: bool) -> EditBatch:
        """Collate edit records into one :class:`EditBatch` of ``len(records)`` simultaneous edits.

        Args:
            records: the edits (at least one).
            train: training layout (one equivalence row per edit drawn from the prompt and rephrases,
                ``n_loc`` sampled locality items, seeded) or evaluation layout (one row per rephrase, the
                first ``n_loc`` locality items, and a ``true`` sub-batch if any record has ``target_true``).

        Returns:
            The batch; groups without rows are tensors of shape ``[0, 1]``. Locality items whose prompt is
            the prompt or a rephrase of an edit in the same batch are skipped (that fact is being edited).

        """
        if not records:
            raise ValueError("make_batch needs at least one record")
        n_loc = self.hparams.n_loc
        rng = self._sampling_rng(records) if train else None
        edit = [self.encode(r.prompt, r.target_new) for r in records]
        edited_prompts = {p for r in records for p in (r.prompt, *r.rephrases)}
        equiv, equiv_index, loc, loc_index = [], [], [], []
        loc_items: list[LocalityItem] = []
        for i, r in enumerate(records):
            usable = [item for item in r.locality if item.prompt not in edited_prompts]
            if rng is not None:
                prompts = [rng.choice([r.prompt, *r.rephrases])]
                items = rng.sample(usable, min(n_loc, len(usable)))
            else:
                prompts, items = list(r.rephrases), usable[:n_loc]
            for prompt in prompts:
                equiv.append(self.encode(prompt, r.target_new))
                equiv_index.append(i)
            for item in items:
                loc.append(self.encode(item.prompt, item.answer))
                loc_index.append(i)
                loc_items.append(item)
        pad_id = int(self.tok.pad_token_id)
        batch: dict[str, Any] = {
            "edit": _pad(edit, pad_id),
            "equiv": _pad(equiv, pad_id, equiv_index),
            "loc": _pad(loc, pad_id, loc_index),
        }
        if not train and any(r.target_true is not None for r in records):
            true = [
                self._prompt_only(r.prompt) if r.target_true is None else self.encode(r.prompt, r.target_true)
                for r in records
            ]
            batch["true"] = _pad(true, pad_id)
        batch["meta"] = {
            "ids": [r.id if r.id is not None else f"#{i}" for i, r in enumerate(records)],
            "prompts": [r.prompt for r in records],
            "targets": [r.target_new for r in records],
            "targets_true": [r.target_true for r in records],
            "rephrases": [list(r.rephrases) for r in records],
            "loc_prompts": [item.prompt for item in loc_items],
            "loc_answers": [item.answer for item in loc_items],
        }
        return batch  # type: ignore[return-value]

    def _sampling_rng(self, records: list[EditRecord]) -> random.Random:
        """The training RNG of one batch, seeded by (seed, epoch, record ids): resumes and workers agree."""
        epoch = self._train_sampler.epoch if self._train_sampler is not None else 0
        ids = ",".join(str(r.id) for r in records)
        return random.Random(f"{self.hparams.seed}/{epoch}/{ids}")

    def _collate(self, rows: list[dict[str, Any]], train: bool) -> EditBatch:
        return self.make_batch([_from_row(row) for row in rows], train=train)

    # ------------------------------------------------------------------ dataloaders

    def train_dataloader(self) -> DataLoader:
        """Return shuffled batches of ``n_edits`` training records (seeded; a short last batch is dropped)."""
        data = self._split("train")
        n_edits = self.hparams.n_edits
        if len(data) < n_edits:
            raise ValueError(
                f"the train split has {len(data)} records, fewer than n_edits={n_edits}: "
                "no training batch can be built; lower n_edits or raise max_train_records"
            )
        self._train_sampler = ResumableShuffleSampler(len(data), self.hparams.seed)
        if self._resume is not None:
            self._train_sampler.set_epoch(self._resume["epoch"])
            self._train_sampler.start = min(len(data), self._resume["consumed_batches"] * n_edits)
            self._resume = None
        return DataLoader(
            data,
            batch_size=n_edits,
            sampler=self._train_sampler,
            drop_last=True,
            collate_fn=partial(self._collate, train=True),
            num_workers=self.hparams.num_workers,
        )

    def state_dict(self) -> dict[str, Any]:
        """Position in the training data (epoch and batches consumed), saved in checkpoints for resuming."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or self._train_sampler is None:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(trainer.current_epoch), "consumed_batches": int(progress.completed)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue an interrupted epoch where it stopped (used by ``fit --ckpt_path``)."""
        if state_dict:
            self._resume = {
                "epoch": int(state_dict["epoch"]),
                "consumed_batches": int(state_dict["consumed_batches"]),
            }

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self._split(split),
            batch_size=self.eval_batch_size,
            shuffle=False,
            drop_last=False,
            collate_fn=partial(self._collate, train=False),
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        """Return validation batches of ``eval_n_edits`` records, in file order."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """Return test batches of ``eval_n_edits`` records, in file order."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Return prediction batches: the test split, like :meth:`test_dataloader`."""
        return self._eval_loader("test")


def _to_row(record: EditRecord) -> dict[str, Any]:
    """Turn a record into a ``datasets`` row; ``meta`` becomes JSON text, as its keys vary between records."""
    row = record.to_dict()
    row["meta"] = json.dumps(row["meta"], ensure_ascii=False, sort_keys=True)
    return row


def _from_row(row: dict[str, Any]) -> EditRecord:
    """Invert :func:`_to_row`."""
    return EditRecord(
        prompt=row["prompt"],
        target_new=row["target_new"],
        target_true=row["target_true"],
        rephrases=list(row["rephrases"] or []),
        locality=[LocalityItem(item["prompt"], item["answer"]) for item in row["locality"] or []],
        subject=row["subject"],
        relation=row["relation"],
        id=row["id"],
        meta=json.loads(row["meta"]),
        task=row.get("task") or "completion",
    )


def _pad(
    rows: list[tuple[list[int], list[int]]], pad_id: int, edit_index: list[int] | None = None
) -> TokenRows:
    """Right-pad ``(input_ids, labels)`` rows into a :class:`TokenRows` group (``[0, 1]`` if empty)."""
    width = max((len(ids) for ids, _ in rows), default=1)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, : len(ids)] = 1
        labels[i, : len(labs)] = torch.tensor(labs, dtype=torch.long)
    group: TokenRows = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if edit_index is not None:
        group["edit_index"] = torch.tensor(edit_index, dtype=torch.long)
    return group
