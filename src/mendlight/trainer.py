"""The Trainer of the ``mendlight`` command: Lightning's, plus the ``edit`` subcommand.

LightningCLI turns each subcommand's Trainer method into its options (the signature) and help (the docstring's
``Args``), so :meth:`MendTrainer.edit` is where ``mendlight edit``'s options are declared; the work is done
by :func:`mendlight.edit_command.run_edit`.
"""

from __future__ import annotations

from pytorch_lightning import Trainer

from mendlight.data.module import EditDataModule
from mendlight.editors import Editor
from mendlight.run_dirs import run_directory


class MendTrainer(Trainer):
    """Lightning's Trainer plus the ``edit`` subcommand."""

    def edit(
        self,
        model: Editor,
        datamodule: EditDataModule | None = None,
        ckpt_path: str | None = None,
        prompt: str | None = None,
        target: str | None = None,
        rephrases: list[str] | None = None,
        subject: str | None = None,
        file: str | None = None,
        save: str | None = None,
        overwrite: bool = False,
        max_new_tokens: int = 12,
        weights_only: bool | None = None,
        check: list[str] | None = None,
        n_check: int = 2,
        json: bool = False,
    ) -> dict:
        """Apply edits with an editor and print pre-/post-edit greedy outputs; optionally save the model.

        Args:
            model: the editor (from ``-c`` config; its trained weights come from ``ckpt_path``).
            datamodule: tokenises the edit (its tokenizer is the base model's).
            ckpt_path: trained editor checkpoint (needed for MEND; FT needs none).
            prompt: the edit prompt, e.g. "The capital of France is".
            target: the new target, e.g. "Rome". It follows the prompt after one space, added only when the
                target does not already start with whitespace and the prompt does not end in it (as in ROME
                and EasyEdit): "Rome" and " Rome" make the same edit.
            rephrases: extra prompts to check the edit generalises to (repeatable, or a JSON list).
            subject: the words of the prompt that name what the fact is about, e.g. "France"; a subject-keyed
                MALMEN (``key_tokens: subject``) needs it, other editors record it.
            file: a JSONL file of edit records applied together (instead of prompt/target).
            save: write the edited model to this directory as a plain Hugging Face model; it must be new or
                empty (checked before the edit is computed) and never the base model's own directory.
            overwrite: allow ``save`` to replace the files of a non-empty directory.
            max_new_tokens: tokens of greedy output shown per prompt.
            weights_only: load the checkpoint with ``torch.load(weights_only=...)``; default True (safe).
            check: a prompt the edit should not change (repeatable, or a JSON list): the locality check shows
                its answer before and after the edit. Default: the records' locality items, else n_check
                same-relation and n_check unrelated prompts of the dataset's test records.
            n_check: prompts of each kind the locality check takes from the records or the dataset; 0 turns
                it off. An embedded dataset not built yet is built first (the generation dataset samples
                with the model: give --check prompts instead to avoid that).
            json: print the report (edits, previews, locality check, timings) as one JSON object on
                stdout (``--json`` alone means ``--json true``).

        """
        from mendlight.edit_command import run_edit

        return run_edit(
            model,
            datamodule,
            ckpt_path=ckpt_path,
            prompt=prompt,
            target=target,
            rephrases=list(rephrases or []),
            subject=subject,
            file=file,
            save=save,
            overwrite=overwrite,
            max_new_tokens=max_new_tokens,
            weights_only=weights_only is not False,
            check=list(check or []),
            n_check=n_check,
            as_json=json,
            run_dir=lambda: run_directory(self, logged_only=True),
        )
