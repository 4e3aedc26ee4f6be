"""The editors on a CUDA device: the same numbers as on the CPU, and the CLI's fit and test on a GPU.

Skipped where there is no CUDA device (CI and the 2-core machine have none); run on a GPU machine with
``python -m pytest tests/gpu``. Each editor is built twice from the same seed, once per device, and fed the
same batch: the evaluation's scores (label log-probabilities; predictions up to near ties), training losses
and editor gradients must agree within float32 round-off (TF32 is switched off so that the GPU's matrix
products are plain float32). ``MENDLIGHT_TEST_DEVICE=cpu`` runs the same checks with the CPU in the GPU's
place, which is how the tests themselves are checked without a GPU.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from pytorch_lightning.utilities import move_data_to_device

DEVICE = os.environ.get("MENDLIGHT_TEST_DEVICE", "cuda")
ACCELERATOR = "gpu" if DEVICE == "cuda" else DEVICE
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"
)

from tests.editors.test_every_editor import EDITORS, _setup  # noqa: E402
from tests.models.test_architectures import _records  # noqa: E402
from tests.tiny_runs import TEST_RUN, run_tiny  # noqa: E402

LAYOUTS = ["gpt2", "t5-v1_1", "bert"]


@pytest.fixture(autouse=True)
def _plain_float32():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _pair(layout: str, editor_name: str, tmp_path: Path, train: bool):
    """The same editor (same seed, same statistics) on the CPU and on the GPU, in train or eval mode, and a
    batch of 2 edits (1 for KE, which edits one fact at a time) on the CPU."""
    cpu, dm, kind = _setup(layout, editor_name, tmp_path / "cpu")
    gpu, _, _ = _setup(layout, editor_name, tmp_path / "gpu")
    gpu = gpu.to(DEVICE)
    if editor_name in ("MEND", "MALMEN"):  # fill their normalisation statistics, as training does
        warm = dm.make_batch(_records(kind, 2), train=True)["edit"]
        cpu.train()
        cpu.edit(warm)
        gpu.train()
        gpu.edit(move_data_to_device(warm, DEVICE))
    cpu.train(train)
    gpu.train(train)
    return cpu, gpu, dm.make_batch(_records(kind, 1 if editor_name == "KE" else 2), train=train)


def _close(a: torch.Tensor, b: torch.Tensor, what: str, rtol: float = 1e-3, atol: float = 0.0) -> None:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    if not a.numel():
        assert not b.numel(), what
        return
    scale = max(float(a.abs().max()), 1e-6)
    assert float((a - b).abs().max()) <= rtol * scale + atol, f"{what}: CPU and CUDA differ"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("editor_name", sorted(EDITORS))
def test_an_edit_on_cuda_gives_the_cpu_scores(layout, editor_name, tmp_path):
    cpu, gpu, batch = _pair(layout, editor_name, tmp_path, train=False)
    out_cpu = cpu.evaluate_batch(batch)
    out_gpu = gpu.evaluate_batch(move_data_to_device(batch, DEVICE))
    rtol = 1e-2 if editor_name in ("FT", "FTKL") else 1e-3
    for field in ("pre_loc", "post_edit", "post_equiv", "post_loc", "pre_true"):
        a, b = getattr(out_cpu, field), getattr(out_gpu, field)
        if a is None:
            assert b is None
            continue
        what = f"{editor_name}/{layout} {field}"
        assert torch.equal(a.labels, b.labels.cpu()), what
        _close(a.logp, b.logp, f"{what} log-probabilities", rtol=rtol)
        # argmax may flip only where the label's log-probability is not resolved (a near tie)
        flips = (a.pred != b.pred.cpu()) & a.scored
        assert int(flips.sum()) <= max(1, int(a.scored.sum()) // 100), f"{what}: predictions differ"
    _close(out_cpu.loc_kl, out_gpu.loc_kl, f"{editor_name}/{layout} locality KL", rtol=rtol, atol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("editor_name", ["MEND", "MALMEN", "ENN", "KE"])
def test_a_training_step_on_cuda_gives_the_cpu_loss_and_gradients(layout, editor_name, tmp_path):
    cpu, gpu, batch = _pair(layout, editor_name, tmp_path, train=True)
    loss_cpu = cpu.training_step(batch, 0)
    loss_gpu = gpu.training_step(move_data_to_device(batch, DEVICE), 0)
    loss_cpu.backward()
    loss_gpu.backward()
    assert loss_gpu.device.type == DEVICE
    _close(loss_cpu, loss_gpu, f"{editor_name}/{layout} loss")
    cpu_grads = dict(cpu.named_parameters())
    compared = 0
    for name, param in gpu.named_parameters():
        if param.grad is None:
            assert cpu_grads[name].grad is None, name
            continue
        _close(cpu_grads[name].grad, param.grad, f"{editor_name}/{layout} grad {name}", rtol=5e-3)
        compared += 1
    assert compared > 0


def _fit_and_test(tmp_path: Path, precision: str) -> dict:
    """``mendlight fit`` then ``test`` of the tiny config on the GPU, in-process; return results.json."""
    fit_args = ["--trainer.accelerator", ACCELERATOR, "--trainer.precision", precision]
    runs = run_tiny(tmp_path, fit_args, test=True, n=12)
    fit = json.loads((runs / "version_0" / "fit.json").read_text())
    assert fit["global_step"] == 6
    return json.loads((runs / TEST_RUN / "results.json").read_text())


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fit_and_test_on_the_gpu(tmp_path, precision):
    results = _fit_and_test(tmp_path, precision)
    summary = results["subsets"]["all"]
    assert summary["n_records"] == 4  # limit_test_batches of the tiny config
    for key in ("es", "es_edit", "locality"):
        assert 0.0 <= summary[key] <= 1.0 and not math.isnan(summary[key]), key
    assert summary["edit_latency_s"] > 0
    assert results["skipped_steps"] == 0
