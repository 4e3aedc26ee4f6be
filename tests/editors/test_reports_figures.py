"""The test dashboards: subset scalars at the checkpoint's step, the figures, and the data hyperparameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from mendlight.editors.reports_figures import (
    es_by_relation_figure,
    es_by_subset_figure,
    log_test_dashboards,
    subset_scalars,
)
from tests.tiny_runs import TEST_RUN, run_tiny

RESULTS = {
    "subsets": {
        "all": {"n_records": 10, "es": 0.5, "es_edit": 0.6, "es_equiv": 0.4, "acc_drawdown": 0.01},
        "known": {"n_records": 3, "es": 1.0, "es_edit": 1.0, "es_equiv": None, "acc_drawdown": None},
        "unseen_relations": {"n_records": 7, "es": 0.25, "es_edit": 0.2, "es_equiv": 0.3},
    },
    "by_relation": {
        "capital": {"n_records": 4, "es": 0.75, "seen": True},
        "continent": {"n_records": 6, "es": 0.5, "seen": False},
    },
}


def _events(directory: Path) -> EventAccumulator:
    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_subset_scalars_name_every_numeric_metric_of_every_subset():
    scalars = subset_scalars(RESULTS)
    assert scalars["test/all/es"] == 0.5 and scalars["test/known/es_edit"] == 1.0
    assert scalars["test/unseen_relations/es_equiv"] == 0.3 and scalars["test/all/n_records"] == 10
    assert "test/known/es_equiv" not in scalars and "test/known/acc_drawdown" not in scalars  # None: no data
    assert len(scalars) == 5 + 3 + 4


def test_the_figures_draw_one_bar_per_value_and_hatch_unseen_relations():
    subsets = es_by_subset_figure(RESULTS)
    (ax,) = subsets.axes
    assert len(ax.patches) == 3 * 3  # ES, edit ES, rephrase ES for each of the 3 subsets
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["all", "known", "unseen_relations"]
    relations = es_by_relation_figure(RESULTS)
    bars = relations.axes[0].patches
    assert [round(b.get_width(), 2) for b in bars] == [0.75, 0.5]
    assert [b.get_hatch() for b in bars] == [None, "//"]
    assert es_by_relation_figure({"subsets": {}}) is None and es_by_subset_figure({}) is None


def test_dashboards_are_written_at_the_given_step(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    tags = log_test_dashboards(writer, RESULTS, step=1346)
    writer.close()
    acc = _events(tmp_path)
    assert {e.step for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)} == {1346}
    assert acc.Scalars("test/unseen_relations/es")[0].value == pytest.approx(0.25)
    assert set(acc.Tags()["images"]) == {"test/figures/es_by_subset", "test/figures/es_by_relation"}
    assert set(tags) == set(acc.Tags()["scalars"]) | set(acc.Tags()["images"])


def test_a_checkpoint_test_sits_at_the_checkpoint_step_with_the_data_hyperparameters(tmp_path, no_argv):
    from tensorboard.plugins.hparams import plugin_data_pb2

    runs = run_tiny(tmp_path, test=True)
    acc = _events(runs / TEST_RUN)
    es = acc.Scalars("test/all/es")
    assert [e.step for e in es] == [6]  # the tiny config's max_steps: the step of last.ckpt
    assert "test/figures/es_by_subset" in acc.Tags()["images"]
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["data.dataset"].string_value == str(tmp_path / "records")
    assert hparams["data.max_length"].number_value == 128 and hparams["editor"].string_value == "MEND"
