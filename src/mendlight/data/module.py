"""``EditDataModule``: edit-record splits, tokenisation, and the collate into :class:`EditBatch`.

Splits are JSONL files of :class:`~mendlight.data.records.EditRecord` (``train.jsonl``, ``val.jsonl``,
``test.jsonl``), either in a directory or built offline by the embedded fact builder
(:mod:`mendlight.data.builders.facts`). Rows are tokenised by the encoder of the base model's layout
(:mod:`mendlight.data.encoding`: causal, seq2seq or classifier, from ``model_kind`` of the config named by
the ``tokenizer`` option), with labels aligned with the logits (see :mod:`mendlight.data.batch`). A record
whose ``task`` the layout cannot score (e.g. a classification record with a causal LM), or from which a batch
could build a row that cannot be encoded (a target too long for ``max_length``), is rejected at ``setup``
with a :class:`~mendlight.data.records.RecordError` naming the file, the line, the field and the record id.
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

from mendlight.data.batch import EditBatch
from mendlight.data.composition import prompt_template
from mendlight.data.encoding import (
    CausalEncoder,
    EncodedRow,
    RowEncoder,
    check_task,
    make_encoder,
)
from mendlight.data.records import (
    EditRecord,
    LocalityItem,
    RecordFileNotFoundError,
    read_records,
)
from mendlight.data.row_checks import check_rows
from mendlight.data.sampling import (
    PADDING_KEY,
    POSITION_KEY,
    EvalSplit,
    EvalUnitSampler,
    ResumableShuffleSampler,
)
from mendlight.errors import ConfigError, check_at_least

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Choices of ``equiv_from``: where a training step's equivalence row comes from.
EQUIV_FROM: tuple[str, ...] = ("prompt_and_rephrases", "rephrases")
EMBEDDED_DATASETS: tuple[str, ...] = ("facts", "facts-qa", "claims", "generation")
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


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
        max_loc_length: int | None = None,
        max_train_records: int | None = None,
        max_eval_records: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        dataset_options: dict[str, Any] | None = None,
        equiv_from: str = "prompt_and_rephrases",
    ) -> None:
        """Configure the data; nothing is read or tokenised until ``prepare_data``/``setup``.

        Args:
            dataset: an embedded offline dataset, built and cached on first use (always with its default
                build seed, so that every training seed shares one test set): ``"facts"`` (counterfactual
                fact edits), ``"facts-qa"`` (the same with question prompts, ``Q: ...? A:``), ``"claims"``
                (true/false fact claims for a classifier) or ``"generation"`` (FOLDOC passage prefixes
                with 10-token continuations sampled from the ``tokenizer``'s model; needs ``make corpus``);
                or a directory holding ``train.jsonl``, ``val.jsonl`` and ``test.jsonl`` edit records.
            tokenizer: base-model reference whose tokenizer to use (the CLI links it to the editor's base
                model): an embedded alias such as ``smollm2-135m``, a local directory, a ``.gguf`` file, a
                ``tiny-random-<type>`` name, or a hub name.
            n_edits: simultaneous edits per training batch (k).
            eval_n_edits: simultaneous edits per validation/test batch; defaults to ``n_edits``.
            n_loc: locality rows per edit record (sampled in training, the first ones in evaluation).
            max_length: maximum tokens per row; long prompts are truncated from the left (seq2seq models:
                of the encoder input, and separately of the decoder labels with their eos).
            max_loc_length: maximum tokens of a full-text locality row (a generation record's locality
                item with an empty prompt, scored as LM text: the passage keeps its first tokens);
                defaults to ``max_length``.
            max_train_records: use only the first N training records (quick and debug runs).
            max_eval_records: use only the first N records of the validation and of the test split.
            seed: seed of the training shuffle and of the rephrase/locality sampling.
            num_workers: DataLoader worker processes.
            equiv_from: where a training step's equivalence row comes from: ``"prompt_and_rephrases"`` (a
                seeded choice among the edit prompt and the record's rephrases, the default) or
                ``"rephrases"`` (the rephrases only; the prompt when a record has none).
            dataset_options: options of an embedded dataset's builder (CLI:
                ``--data.init_args.dataset_options '{"split_by": "relation"}'``), e.g. for ``facts`` and
                ``facts-qa``: ``split_by`` (``"subject"``, the default, or ``"relation"``: some relations
                only in val, others only in test, never in train), ``max_per_relation``, ``n_cities``,
                ``min_population``, ``val_fraction``, ``test_fraction``, ``n_locality``; ``claims`` and
                ``generation`` take their builders' options. Each distinct set of options is built and
                cached once. Unknown names or refused values raise :class:`~mendlight.errors.ConfigError`
                naming the accepted options; a records directory takes none.

        """
        super().__init__()
        for name, value, low in (
            ("n_edits", n_edits, 1),
            ("eval_n_edits", eval_n_edits, 1),
            ("n_loc", n_loc, 0),
            ("max_length", max_length, 2),
            ("max_loc_length", max_loc_length, 2),
            ("max_train_records", max_train_records, 1),
            ("max_eval_records", max_eval_records, 1),
            ("num_workers", num_workers, 0),
        ):
            check_at_least("EditDataModule", name, value, low)
        if equiv_from not in EQUIV_FROM:
            raise ConfigError(
                f"EditDataModule: equiv_from must be one of {', '.join(EQUIV_FROM)}, got {equiv_from!r}"
            )
        from mendlight.data.builders.options import check_dataset_options

        dataset_options = check_dataset_options(dataset, dataset_options) or None
        self.save_hyperparameters()
        self.splits: dict[str, Dataset] = {}
        self._train_sampler: ResumableShuffleSampler | None = None
        self._resume: dict[str, int] | None = None
        self._encoder: RowEncoder | None = None
        #: batches per evaluation unit kept on one process: the chain length of a sequential test, else 1
        self.eval_chain_batches = 1
        #: set by an editor training with ``independent_edits``: evaluation then edits one record at a time
        #: unless ``eval_n_edits`` is given
        self.train_edits_independent = False

    # ------------------------------------------------------------------ sizes, tokenizer, files

    @property
    def eval_batch_size(self) -> int:
        """Edits per validation/test batch (``eval_n_edits``, defaulting to ``n_edits``)."""
        default = 1 if self.train_edits_independent else self.hparams.n_edits
        return self.hparams.eval_n_edits or default

    @property
    def tok(self) -> PreTrainedTokenizerBase:
        """The tokenizer, loaded on first use with :func:`~mendlight.models.loading.load_tokenizer`."""
        from mendlight.models.loading import load_tokenizer

        tok = load_tokenizer(self.hparams.tokenizer)
        if tok.pad_token_id is None:
            raise ValueError(f"tokenizer of {self.hparams.tokenizer!r} has no pad token")
        return tok

    def dataset_dir(self) -> Path:
        """Return the directory of the split files, building an embedded dataset if needed."""
        dataset = self.hparams.dataset
        options = dict(self.hparams.get("dataset_options") or {})
        if dataset == "facts":
            from mendlight.data.builders.facts import build_facts

            return build_facts(**options)
        if dataset == "facts-qa":
            from mendlight.data.builders.facts import build_facts

            return build_facts(prompt_style="question", **options)
        if dataset == "claims":
            from mendlight.data.builders.claims import build_claims

            return build_claims(**options)
        if dataset == "generation":
            from mendlight.data.builders.generation import build_generation

            return build_generation(model=self.hparams.tokenizer, **options)
        path = Path(dataset).expanduser()
        if not path.is_dir():
            raise RecordFileNotFoundError(
                f"dataset {dataset!r} is neither an embedded dataset ({', '.join(EMBEDDED_DATASETS)}) nor a "
                "directory; pass one of those or a directory holding train.jsonl, val.jsonl and test.jsonl"
            )
        return path

    def prepare_data(self) -> None:
        """Build an embedded dataset once (rank 0 only); a no-op for a records directory."""
        self.dataset_dir()

    def setup(self, stage: str | None = None) -> None:
        """Read and validate the splits this stage needs into HF ``datasets.Dataset`` objects.

        Args:
            stage: ``fit`` (train and val), ``validate`` (val), ``test``/``predict`` (test), or None (all).

        """
        for split in _STAGE_SPLITS.get(stage or "", SPLITS):
            self.setup_split(split)

    def setup_split(self, split: str) -> None:
        """Read and validate one split (``train``, ``val`` or ``test``), unless it is already loaded.

        Every record kept (see ``max_train_records``/``max_eval_records``) must fit the model: its task
        (:meth:`check_records`) and every row a batch can build from it (:meth:`check_rows`), so that a
        record too long for ``max_length`` fails here, naming its file and line, not when a data loader
        draws it.

        Raises:
            RecordFileNotFoundError: if the split file is missing (also a ``FileNotFoundError``).
            RecordError: if a record is invalid or does not fit the model (names the file and the line).

        """
        if split in self.splits:
            return
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        from datasets import Dataset

        root = self.dataset_dir()
        path = root / f"{split}.jsonl"
        if not path.is_file():
            raise RecordFileNotFoundError(
                f"missing split file {path}: the dataset directory must hold train.jsonl, val.jsonl and "
                "test.jsonl, one JSON edit record per line (see mendlight.data.records)"
            )
        records = read_records(path)
        limit = self.hparams.max_train_records if split == "train" else self.hparams.max_eval_records
        if limit is not None:
            records = records[:limit]
        self.check_records(records, str(path))
        self.check_rows(records, str(path))
        self.splits[split] = Dataset.from_list([_to_row(r) for r in records])

    def records(self, split: str) -> list[EditRecord]:
        """Return the (possibly truncated) records of a split that ``setup`` has loaded."""
        return [_from_row(row) for row in self._split(split)]

    def _split(self, split: str) -> Dataset:
        if split not in self.splits:
            raise RuntimeError(f"the {split!r} split is not loaded; call setup() first")
        return self.splits[split]

    # ------------------------------------------------------------------ tokenisation and collate

    @property
    def layout(self) -> str:
        """The base model's layout, ``causal``, ``seq2seq`` or ``classifier``, from its (cheap) config."""
        return self.encoder.layout

    @property
    def encoder(self) -> RowEncoder:
        """The row encoder of the base model's layout (:mod:`mendlight.data.encoding`), built on first use."""
        if self._encoder is None:
            from mendlight.models.arch import model_kind
            from mendlight.models.loading import load_base_config

            config = load_base_config(self.hparams.tokenizer)
            self._encoder = make_encoder(
                model_kind(config),
                self.tok,
                self.hparams.max_length,
                self.hparams.max_loc_length,
                getattr(config, "decoder_start_token_id", None),
            )
        return self._encoder

    def check_records(self, records: list[EditRecord], source: str = "") -> None:
        """Raise a ``RecordError`` naming the record (file and line, else ``source``) if its task misfits."""
        layout = self.layout
        for record in records:
            check_task(record.task, layout, record.id, self.hparams.tokenizer, record.source or source)

    def check_rows(self, records: list[EditRecord], source: str = "") -> None:
        """Encode every row a batch can build from each record (see :mod:`mendlight.data.row_checks`).

        Raises:
            RecordError: naming the file and line, the field and the record id of a row that cannot be
                encoded (e.g. a target too long for ``max_length``).

        """
        check_rows(self.encoder, records, source)

    def encode(self, prompt: str, target: str) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` of a causal LM: :meth:`~mendlight.data.encoding.CausalEncoder.pair`.

        Raises:
            ValueError: if the prompt or target gives no tokens, or the target alone does not fit.
            TypeError: if the base model is not a causal LM.

        """
        if not isinstance(self.encoder, CausalEncoder):
            raise TypeError(f"encode() gives causal rows; the base model is {self.layout}: use encoder.pair")
        row = self.encoder.pair(prompt, target)
        return row.input_ids, row.labels  # type: ignore[return-value]

    def make_batch(self, records: list[EditRecord], train: bool) -> EditBatch:
        """Collate edit records into one :class:`EditBatch` of ``len(records)`` simultaneous edits.

        Rows follow the model layout (:mod:`mendlight.data.encoding`). A ``generation`` record appends its
        target verbatim; without rephrases its equivalence row is the edit row with a prefix cut
        (docs/algorithm.md §5.4: up to half of the prompt tokens, drawn from the batch RNG in training and
        from an RNG seeded by ``seed`` and the record id in evaluation), and a locality item with an empty
        prompt is a full-text row (every next token scored, at most ``max_loc_length`` tokens).

        Args:
            records: the edits (at least one).
            train: training layout (one equivalence row per edit drawn from the prompt and rephrases,
                ``n_loc`` sampled locality items, seeded) or evaluation layout (one row per rephrase, the
                first ``n_loc`` locality items, and a ``true`` sub-batch if any record has ``target_true``).

        Returns:
            The batch; groups without rows are ``[0, 1]`` tensors (classifier labels ``[0]``). Locality items
            whose prompt is the prompt or a rephrase of an edit in the batch are skipped (being edited).

        Raises:
            RecordError: if a record's task does not fit the model layout.
            ValueError: if a row cannot be encoded (the message names the record).

        """
        if not records:
            raise ValueError("make_batch needs at least one record")
        self.check_records(records)
        enc = self.encoder
        rng = self._sampling_rng(records) if train else None
        edited_prompts = {p for r in records for p in (r.prompt, *r.rephrases)}
        edit, equiv, equiv_index, loc, loc_index = [], [], [], [], []
        loc_items: list[LocalityItem] = []
        for i, r in enumerate(records):
            try:
                edit_row, equiv_rows, loc_rows, items = self._record_rows(r, edited_prompts, rng)
            except ValueError as err:
                raise ValueError(f"record {r.id!r}: {err}") from err
            edit.append(edit_row)
            equiv += equiv_rows
            equiv_index += [i] * len(equiv_rows)
            loc += loc_rows
            loc_index += [i] * len(loc_rows)
            loc_items += items
        edit_rows = enc.pad(edit)
        edit_rows["subject_last"] = torch.tensor(
            [
                enc.subject_position(row.input_ids, r.prompt, r.subject)
                for row, r in zip(edit, records, strict=True)
            ],
            dtype=torch.long,
        )
        batch: dict[str, Any] = {
            "edit": edit_rows,
            "equiv": enc.pad(equiv, equiv_index),
            "loc": enc.pad(loc, loc_index),
        }
        if not train and any(r.target_true is not None for r in records):
            true = [
                enc.prompt_only(r.prompt)
                if r.target_true is None
                else enc.pair(r.prompt, r.target_true, verbatim=r.task == "generation")
                for r in records
            ]
            batch["true"] = enc.pad(true)
        conditions = [enc.ids(condition_text(r), special=True)[: enc.max_length] for r in records]
        batch["cond"] = enc.pad_ids(conditions)
        batch["meta"] = {
            "ids": [r.id if r.id is not None else f"#{i}" for i, r in enumerate(records)],
            "prompts": [r.prompt for r in records],
            "targets": [r.target_new for r in records],
            "targets_true": [r.target_true for r in records],
            "rephrases": [list(r.rephrases) for r in records],
            "loc_prompts": [item.prompt for item in loc_items],
            "loc_answers": [item.answer for item in loc_items],
            "tasks": [r.task for r in records],
            "relations": [r.relation for r in records],
            "relations_in_train": [_relation_in_train(r) for r in records],
            "templates": [prompt_template(r.prompt, r.subject) for r in records],
            "subjects": [r.subject for r in records],
        }
        return batch  # type: ignore[return-value]

    def _record_rows(
        self, r: EditRecord, edited: set[str], rng: random.Random | None
    ) -> tuple[EncodedRow, list[EncodedRow], list[EncodedRow], list[LocalityItem]]:
        """The edit row, equivalence rows, locality rows and items of one record (see :meth:`make_batch`)."""
        enc, gen = self.encoder, r.task == "generation"
        edit_row = enc.pair(r.prompt, r.target_new, verbatim=gen)
        if gen and not r.rephrases:
            cut_rng = rng if rng is not None else random.Random(f"{self.hparams.seed}/cut/{r.id or r.prompt}")
            equiv = [enc.cut_prefix(edit_row, cut_rng)]
        else:
            if rng is None:
                prompts = list(r.rephrases)
            elif self.hparams.get("equiv_from") == "rephrases" and r.rephrases:
                prompts = [rng.choice(r.rephrases)]
            else:
                prompts = [rng.choice([r.prompt, *r.rephrases])]
            equiv = [enc.pair(p, r.target_new, verbatim=gen) for p in prompts]
        usable = [item for item in r.locality if item.prompt not in edited]
        n_loc = self.hparams.n_loc
        items = rng.sample(usable, min(n_loc, len(usable))) if rng is not None else usable[:n_loc]
        return edit_row, equiv, [self.locality_row(it, r.task) for it in items], items

    def locality_row(self, item: LocalityItem, task: str) -> EncodedRow:
        """Encode a locality item: prompt → answer, or a passage as text (generation, empty prompt)."""
        if task == "generation" and not item.prompt:
            return self.encoder.text(item.answer)
        return self.encoder.pair(item.prompt, item.answer)

    def _sampling_rng(self, records: list[EditRecord]) -> random.Random:
        """The training RNG of one batch, seeded by (seed, epoch, record ids): resumes and workers agree."""
        epoch = self._train_sampler.epoch if self._train_sampler is not None else 0
        ids = ",".join(str(r.id) for r in records)
        return random.Random(f"{self.hparams.seed}/{epoch}/{ids}")

    def _collate(self, rows: list[dict[str, Any]], train: bool) -> EditBatch:
        """Collate dataset rows; evaluation rows carry their split position, padding rows are dropped.

        A batch made only of padding (see :class:`~mendlight.data.sampling.EvalUnitSampler`) is
        ``{"padding": True}``: every process runs it, and the editor skips it.
        """
        real = [row for row in rows if not row.get(PADDING_KEY)]
        if not real:
            return {"padding": True}  # type: ignore[return-value]
        batch = self.make_batch([_from_row(row) for row in real], train=train)
        if not train:
            positions = [int(row[POSITION_KEY]) for row in real]
            batch["meta"]["positions"] = positions
            batch["meta"]["unit"] = positions[0] // (self.eval_batch_size * self.eval_chain_batches)
        return batch

    # ------------------------------------------------------------------ dataloaders

    def _processes(self) -> tuple[int, int]:
        """``(world size, rank)`` of the run this data module serves (``(1, 0)`` outside a trainer)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_dataloader(self) -> DataLoader:
        """Return shuffled batches of ``n_edits`` training records (seeded; a short last batch is dropped).

        With several processes each optimizer step draws ``n_edits`` records per process from one shuffle
        (:class:`~mendlight.data.sampling.ResumableShuffleSampler`); a resumed run continues the interrupted
        epoch with the records an uninterrupted run would have drawn.
        """
        data = self._split("train")
        n_edits = self.hparams.n_edits
        world, rank = self._processes()
        if len(data) < n_edits * world:
            processes = f" x {world} processes" if world > 1 else ""
            raise ConfigError(
                f"the train split has {len(data)} records, fewer than n_edits={n_edits}{processes}: "
                "no training batch can be built; lower --data.init_args.n_edits or raise max_train_records"
            )
        self._train_sampler = ResumableShuffleSampler(len(data), self.hparams.seed, n_edits, world, rank)
        if self._resume is not None:
            self._train_sampler.resume_at(self._resume["epoch"], self._resume["consumed_batches"])
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
        """Position in the training data (epoch and batches consumed), saved in checkpoints for resuming.

        ``processed`` counts the batches whose training step ran: a checkpoint written in
        ``on_train_batch_end`` (before Lightning marks the batch completed) counts that batch too.
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None or self._train_sampler is None:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(trainer.current_epoch), "consumed_batches": int(progress.processed)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue an interrupted epoch where it stopped (used by ``fit --ckpt_path``)."""
        if state_dict:
            self._resume = {
                "epoch": int(state_dict["epoch"]),
                "consumed_batches": int(state_dict["consumed_batches"]),
            }

    def _eval_loader(self, split: str) -> DataLoader:
        """Batches of ``eval_batch_size`` records in file order, each evaluated once across all processes.

        ``eval_chain_batches`` (set by the editor for a sequential test) keeps each chain on one process.
        """
        data = self._split(split)
        world, rank = self._processes()
        sampler = EvalUnitSampler(len(data), self.eval_batch_size, self.eval_chain_batches, world, rank)
        return DataLoader(
            EvalSplit(data),
            batch_size=self.eval_batch_size,
            sampler=sampler,
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


def _relation_in_train(record: EditRecord) -> bool | None:
    """Whether the record's relation was in the training split (``meta["relation_in_train"]``), or None."""
    seen = (record.meta or {}).get("relation_in_train")
    return None if seen is None else bool(seen)


def condition_text(record: EditRecord) -> str:
    """KnowledgeEditor's condition text of an edit (docs/algorithm.md §3.4): ``"<old> >> <new> || <prompt>"``.

    The old target is ``target_true`` (empty when unknown); a generation record's condition is its edit
    sequence, prompt and target.
    """
    if record.task == "generation":
        return record.prompt + record.target_new
    return f"{record.target_true or ''} >> {record.target_new} || {record.prompt}"


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
