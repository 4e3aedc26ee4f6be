"""Shared pieces of the real SmolLM2 tests: the counterfactual edit they all make and a data module."""

from collections.abc import Callable

import pytest

from mendlight.data import EditDataModule, EditRecord, LocalityItem


@pytest.fixture(scope="module")
def france_to_rome() -> Callable[[LocalityItem], EditRecord]:
    """Build the edit "The capital of France is" → Rome (true: Paris) with one locality prompt."""

    def make(locality: LocalityItem) -> EditRecord:
        return EditRecord(
            prompt="The capital of France is",
            target_new="Rome",
            target_true="Paris",
            rephrases=[],
            locality=[locality],
        )

    return make


@pytest.fixture(scope="module")
def datamodule() -> EditDataModule:
    """The embedded facts tokenised for SmolLM2, one locality row per edit."""
    dm = EditDataModule(tokenizer="smollm2-135m", seed=0, n_loc=1)
    dm.prepare_data()
    dm.setup("fit")
    return dm
