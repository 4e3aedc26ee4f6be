"""MALMEN: the least-squares update, its chunking, its closed-form meta-gradient, and its memory."""

from __future__ import annotations

import math

import pytest
import torch

import mendlight.editors.base as editor_base
from mendlight.data import EditDataModule
from mendlight.data.records import write_records
from mendlight.editors import MALMEN
from mendlight.errors import ConfigError
from mendlight.losses import edit_nll
from mendlight.models.functional import state_fingerprint
from mendlight.nn.least_squares import ridge_solve, ridge_update
from mendlight.profiling import TensorPeakMemory
from tests.editors.helpers import FACT, rows
from tests.models.test_architectures import EXPECTED, _records

PAIRS = [
    ("The capital of France is", "Rome"),
    ("Water boils at", "ninety degrees"),
    ("The sky is", "green"),
    ("Paris lies in", "Spain"),
    ("The largest planet is", "Mars"),
    ("Snow is", "black"),
    ("Two plus two is", "five"),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models are fastest on one thread (many small ops; two threads contend on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(ref: str = "tiny-random-llama", **kw) -> MALMEN:
    kw.setdefault("rank", 8)
    torch.manual_seed(0)
    editor = MALMEN(base_model=ref, **kw)
    editor.log_dict = editor.log = lambda *a, **k: None
    return editor


def filled(editor: MALMEN) -> MALMEN:
    """The editor in eval mode with normalisation statistics (one training-mode edit fills them)."""
    editor.train()
    editor.edit(rows(PAIRS[:3]))
    editor.eval()
    return editor


def perturb(editor: MALMEN, scale: float = 0.3) -> None:
    """Move the editor networks off their identity init (nonzero U, FiLM scale/shift) and η, λ off theirs."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in editor.transforms.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
        editor.alpha.copy_(torch.linspace(0.05, 0.2, len(editor.alpha)))
        editor.log_lambda.copy_(torch.linspace(-1.0, 1.0, len(editor.log_lambda)))


def assert_relatively_close(got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
    """``‖got − want‖ ≤ tol ‖want‖`` (Frobenius), and elementwise within ``tol`` of the largest entry."""
    got, want = got.detach(), want.detach().to(got.dtype)
    assert float((got - want).norm()) <= tol * float(want.norm())
    torch.testing.assert_close(got, want, atol=tol * float(want.abs().max()), rtol=0)


def as_key_value(editor: MALMEN, name: str, delta: torch.Tensor) -> torch.Tensor:
    """A weight's delta in the ``y = x W`` layout (key_size × value_size)."""
    return delta if editor.conv1d[name] else delta.T


# ------------------------------------------------------------------------------------------ (1) the update
def test_ridge_update_is_the_least_squares_solution_of_the_augmented_problem():
    gen = torch.Generator().manual_seed(0)
    keys, values = torch.randn(50, 12, generator=gen), torch.randn(50, 7, generator=gen)
    for log_lambda in (-2.0, 0.0, 1.5):
        lam = torch.tensor(log_lambda)
        got = ridge_update(keys, lambda s, e: values[s:e], 7, lam, [], chunk=8)
        stacked_keys = torch.cat([keys, math.exp(log_lambda / 2) * torch.eye(12)]).double()
        stacked_values = torch.cat([values, torch.zeros(12, 7)]).double()
        expected = torch.linalg.lstsq(stacked_keys, stacked_values).solution.float()
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ridge_solve(keys, values, lam), expected, atol=1e-5, rtol=1e-4)
    # more keys than rows or fewer: the solve is key_size × key_size either way; no keys: no update
    empty = ridge_update(torch.zeros(0, 12), lambda s, e: torch.zeros(e - s, 7), 7, torch.tensor(0.0), [], 4)
    assert empty.shape == (12, 7) and not empty.any()


@pytest.mark.parametrize("ref", ["tiny-random-llama", "tiny-random-gpt2"])  # nn.Linear and Conv1D layouts
def test_edit_equals_lstsq_on_the_editors_own_keys_and_values(ref):
    editor = filled(make(ref, edit_lr=0.1, log_lambda=-0.5))
    edit = rows(PAIRS)
    deltas = editor.edit(edit)
    factors = editor.key_factors(edit)
    n_scored = int((edit["labels"] != -100).sum())
    for index, name in enumerate(editor.edit_names):
        keys, grads = factors[name]
        assert keys.shape[0] == grads.shape[0] == n_scored  # one key per answer token
        values = editor.value_chunks(name, keys, grads)(0, keys.shape[0]).detach()
        scale = math.exp(float(editor.log_lambda[index].detach()) / 2)
        eye = scale * torch.eye(keys.shape[1])
        a = torch.cat([keys, eye]).double()
        b = torch.cat([values, torch.zeros(keys.shape[1], values.shape[1])]).double()
        expected = torch.linalg.lstsq(a, b).solution.float()
        assert deltas[name].shape == editor.base.get_parameter(name).shape
        got = as_key_value(editor, name, deltas[name]).detach()
        assert_relatively_close(got, expected, 1e-4)  # float32 solve of a matrix of condition up to ~700
        assert float(expected.abs().max()) > 1e-3


# ------------------------------------------------------------------------------------------ (2) chunking
def test_chunked_equals_unchunked_edits_and_meta_gradients():
    editor = make(edit_lr=0.1)
    perturb(editor)
    start = {k: v.clone() for k, v in editor.state_dict().items() if not k.startswith("base.")}
    edit = rows(PAIRS)  # 7 edits: no chunk size below divides them
    weights = {n: torch.randn(editor.base.get_parameter(n).shape) for n in editor.edit_names}
    results = []
    for lm_chunk, editor_chunk in [(64, 100_000), (1, 1), (3, 5), (2, 4), (7, 13)]:
        editor.load_state_dict(start, strict=False)  # the same (empty) statistics for every run
        editor.hparams.lm_chunk, editor.hparams.editor_chunk = lm_chunk, editor_chunk
        editor.train()  # statistics are filled from all keys before any is normalised
        editor.zero_grad()
        deltas = editor.edit(edit)
        sum((deltas[n] * weights[n]).sum() for n in editor.edit_names).backward()
        params = [editor.alpha, editor.log_lambda, *editor.transforms.parameters()]
        results.append(
            (
                {n: d.detach() for n, d in deltas.items()},
                [p.grad.clone() for p in params],
                int(next(iter(editor.transforms.values())).u_norm.count),
            )
        )
    ref_deltas, ref_grads, ref_count = results[0]
    assert ref_count > 0 and any(float(g.abs().max()) > 0 for g in ref_grads[2:])
    for deltas, grads, count in results[1:]:
        assert count == ref_count
        for name in editor.edit_names:  # float32 sums in another order: ~1e-5 apart
            assert_relatively_close(deltas[name], ref_deltas[name], 1e-4)
        for g, ref in zip(grads, ref_grads, strict=True):
            assert_relatively_close(g, ref, 1e-4)


def test_a_prior_makes_the_regulariser_the_prior_weighted_norm():
    """``(KᵀK + e^λ C)⁻¹ KᵀV`` is least squares with the rows ``e^{λ/2} Lᵀ`` (``C = LLᵀ``) stacked under K."""
    gen = torch.Generator().manual_seed(1)
    keys, values = torch.randn(30, 12, generator=gen), torch.randn(30, 7, generator=gen)
    factor = torch.randn(12, 12, generator=gen) / 4 + torch.eye(12)
    prior = factor @ factor.T
    lam = torch.tensor(0.8)
    got = ridge_update(keys, lambda s, e: values[s:e], 7, lam, [], chunk=8, prior=prior)
    stacked_keys = torch.cat([keys, math.exp(0.8 / 2) * factor.T]).double()
    stacked_values = torch.cat([values, torch.zeros(12, 7)]).double()
    expected = torch.linalg.lstsq(stacked_keys, stacked_values).solution.float()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ridge_solve(keys, values, lam, prior), expected, atol=1e-5, rtol=1e-4)
    identity = ridge_update(keys, lambda s, e: values[s:e], 7, lam, [], chunk=8, prior=torch.eye(12))
    torch.testing.assert_close(identity, ridge_update(keys, lambda s, e: values[s:e], 7, lam, [], chunk=8))


# ------------------------------------------------------------------------------------------ (3) meta-gradient
@pytest.mark.parametrize("with_prior", [False, True], ids=["identity", "prior"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_closed_form_gradient_equals_autograd_through_the_solve_on_a_small_problem(dtype, tol, with_prior):
    gen = torch.Generator().manual_seed(0)
    keys = torch.randn(40, 6, generator=gen, dtype=dtype)
    proj = torch.randn(6, 5, generator=gen, dtype=dtype, requires_grad=True)
    eta = torch.tensor(0.7, dtype=dtype, requires_grad=True)
    log_lambda = torch.tensor(0.4, dtype=dtype, requires_grad=True)
    target = torch.randn(6, 5, generator=gen, dtype=dtype)

    def values(start, end):
        k = keys[start:end]
        return -eta * torch.tanh(k @ proj) * (k * k).sum(-1, keepdim=True)

    prior = None
    if with_prior:
        factor = torch.randn(6, 6, generator=gen, dtype=dtype) / 3 + torch.eye(6, dtype=dtype)
        prior = factor @ factor.T
    closed = ridge_update(keys, values, 5, log_lambda, [proj, eta], chunk=7, prior=prior)
    grads_closed = torch.autograd.grad(((closed - target) ** 2).sum(), [proj, eta, log_lambda])
    exact = ridge_solve(keys, values(0, 40), log_lambda, prior)
    grads_exact = torch.autograd.grad(((exact - target) ** 2).sum(), [proj, eta, log_lambda])
    assert closed.dtype == dtype
    assert_relatively_close(closed, exact, tol)
    for got, want in zip(grads_closed, grads_exact, strict=True):  # ∂L/∂proj, ∂L/∂η, ∂L/∂λ
        assert float(want.abs().max()) > 1e-4
        assert_relatively_close(got, want, tol)


def test_training_step_meta_gradient_equals_autograd_through_the_solve(monkeypatch):
    """The whole training loss: the closed form (chunked) against autograd through ``torch.linalg.solve``."""
    editor = filled(make(edit_lr=0.1, lm_chunk=1, editor_chunk=3))
    perturb(editor)
    editor.double()  # in float64 the comparison is not limited by float32 rounding of a conditioned solve
    params = [editor.alpha, editor.log_lambda, *editor.transforms.parameters()]

    def grads():
        editor.zero_grad()
        loss = editor.training_step(FACT, 0)  # eval mode: the statistics stay as they are
        loss.backward()
        return float(loss.detach()), [
            p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params
        ]

    loss_closed, closed = grads()

    def autograd_solve(keys, values, width, log_lambda, params, chunk, prior=None):
        v = values(0, keys.shape[0])
        return ridge_solve(keys.to(v.dtype), v, log_lambda, prior)

    monkeypatch.setattr("mendlight.editors.malmen.ridge_update", autograd_solve)
    loss_exact, exact = grads()
    assert loss_closed == pytest.approx(loss_exact, rel=1e-5)
    assert float(exact[0].abs().max()) > 0 and float(exact[1].abs().max()) > 0  # η and λ
    for got, want in zip(closed, exact, strict=True):  # float64: the same up to rounding
        assert_relatively_close(got, want, 1e-8)


# ------------------------------------------------------------------------------------------ (4) identity init
def _true_keys_and_grads(editor: MALMEN, edit: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each edited layer's inputs and output gradients at the answer tokens, by plain hooks and autograd."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for name in editor.edit_names:
        layer = editor.base.get_submodule(name.rsplit(".", 1)[0])

        def hook(module, args, output, name=name):
            output.retain_grad()
            seen[name] = (args[0], output)

        handles.append(layer.register_forward_hook(hook))
    leaves = {n: editor.base.get_parameter(n).detach().requires_grad_(True) for n in editor.edit_names}
    inputs = {"input_ids": edit["input_ids"], "attention_mask": edit["attention_mask"]}
    try:
        logits = torch.func.functional_call(editor.base, leaves, kwargs=inputs).logits
        edit_nll(logits, edit["labels"]).backward()
    finally:
        for handle in handles:
            handle.remove()
    scored = (edit["labels"] != -100).reshape(-1)
    out = {}
    for name, (u, z) in seen.items():
        out[name] = (u.detach().reshape(-1, u.shape[-1])[scored], z.grad.reshape(-1, z.shape[-1])[scored])
    return out


def test_at_identity_init_without_norm_the_values_are_minus_eta_key_norm_times_the_true_gradient():
    eta, log_lambda = 0.05, 0.7
    editor = make(norm=False, edit_lr=eta, log_lambda=log_lambda)
    editor.eval()
    edit = rows(PAIRS[:4])
    deltas = editor.edit(edit)
    truth = _true_keys_and_grads(editor, edit)
    for name in editor.edit_names:
        keys, grads = truth[name]
        got_keys, got_grads = editor.key_factors(edit)[name]
        torch.testing.assert_close(got_keys, keys, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(got_grads, grads, atol=1e-7, rtol=1e-4)
        values = editor.value_chunks(name, got_keys, got_grads)(0, keys.shape[0]).detach()
        expected_values = -eta * (keys * keys).sum(-1, keepdim=True) * grads  # ũ = u, δ̃ = δ at init
        torch.testing.assert_close(values, expected_values, atol=1e-8, rtol=1e-4)
        row0 = -eta * float(keys[0] @ keys[0]) * grads[0]
        torch.testing.assert_close(values[0], row0, atol=1e-8, rtol=1e-4)
        gram = keys.T.double() @ keys.double() + math.exp(log_lambda) * torch.eye(keys.shape[1]).double()
        expected = torch.linalg.solve(gram, keys.T.double() @ expected_values.double()).float()
        torch.testing.assert_close(
            as_key_value(editor, name, deltas[name]).detach(), expected, atol=1e-8, rtol=1e-3
        )


def test_at_identity_init_with_norm_the_transformed_factors_are_the_normalised_ones():
    editor = filled(make(edit_lr=0.05))
    edit = rows(PAIRS[3:])
    factors = editor.key_factors(edit)
    for name in editor.edit_names:
        keys, grads = factors[name]
        transform = editor.transforms[editor.route[name][0]]
        u_bar, d_bar = transform.u_norm.normalize(keys), transform.delta_norm.normalize(grads)
        values = editor.value_chunks(name, keys, grads)(0, keys.shape[0]).detach()
        torch.testing.assert_close(values, -0.05 * (keys * u_bar).sum(-1, keepdim=True) * d_bar)
    assert float(editor.alpha[0]) == pytest.approx(0.05) and float(editor.log_lambda.abs().max()) == 0.0


# ------------------------------------------------------------------------------------------ (5) every layout
def with_records(
    layout: str, tmp_path, n: int, n_loc: int, edit_lr: float
) -> tuple[MALMEN, EditDataModule, str]:
    """A rank-4 MALMEN on ``tiny-random-<layout>`` with a data module over ``n`` records of its task."""
    ref = f"tiny-random-{layout}"
    kind = EXPECTED[layout][0]
    for split in ("train", "val", "test"):
        write_records(tmp_path / f"{split}.jsonl", _records(kind, n))
    dm = EditDataModule(dataset=str(tmp_path), tokenizer=ref, n_loc=n_loc, max_length=48)
    dm.setup("test")
    editor = make(ref, rank=4, edit_lr=edit_lr)
    editor.attach_datamodule(dm)
    return editor, dm, kind


@pytest.mark.parametrize("layout", ["llama", "gpt2", "t5-v1_1", "bert"])
def test_one_training_step_on_every_layout(layout, tmp_path):
    editor, dm, kind = with_records(layout, tmp_path, 3, n_loc=1, edit_lr=1e-2)
    before = state_fingerprint(editor.base)
    editor.train()
    batch = dm.make_batch(_records(kind, 3), train=True)
    loss = editor.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    assert float(editor.alpha.grad.abs().min()) > 0 and float(editor.log_lambda.grad.abs().min()) > 0
    assert torch.isfinite(editor.alpha.grad).all() and torch.isfinite(editor.log_lambda.grad).all()
    net_grads = [p.grad for p in editor.transforms.parameters() if p.grad is not None]
    assert net_grads and sum(float(g.abs().sum()) for g in net_grads) > 0
    assert all(p.grad is None for p in editor.base.parameters()) and state_fingerprint(editor.base) == before
    # the keys: answer tokens where the labels score the layer's tokens, else every token the loss reaches
    edit = batch["edit"]
    factors = editor.key_factors(edit)
    scored = int((edit["labels"] != -100).sum()) if edit["labels"].ndim == 2 else None
    real = int(edit["attention_mask"].sum())
    for name in editor.edit_names:
        n = factors[name][0].shape[0]
        if editor.answer_keyed[name] and scored is not None:
            assert n == scored, name
        else:
            assert 3 <= n <= real, name
    if layout == "bert":  # the pooler reads the first token only: the last block's output keys are those
        assert factors[editor.edit_names[-1]][0].shape[0] == 3
    if layout == "t5-v1_1":
        assert {editor.answer_keyed[n] for n in editor.edit_names} == {True, False}


@pytest.mark.parametrize("layout", ["llama", "t5-v1_1", "bert"])
def test_chunked_training_step_equals_the_unchunked_step_in_loss_and_meta_gradient(layout, tmp_path):
    """Post-edit passes over 1 or 2 edits at a time give the loss and gradients of one pass over all 5."""
    editor, dm, kind = with_records(layout, tmp_path, 5, n_loc=2, edit_lr=1e-1)
    editor.train()
    editor.edit(dm.make_batch(_records(kind, 5), train=True)["edit"])  # fill the statistics
    editor.eval()  # statistics fixed: every computation normalises alike
    perturb(editor)
    batch = dm.make_batch(_records(kind, 5), train=True)
    logged = {}
    editor.log_dict = lambda values, **kwargs: logged.update(values)
    params = [editor.alpha, editor.log_lambda, *editor.transforms.parameters()]

    def step(run, chunk):
        editor.hparams.lm_chunk = chunk
        editor.zero_grad()
        loss = run(batch, 0)
        loss.backward()
        values = {k: float(v.detach()) for k, v in logged.items()}
        return float(loss.detach()), values, [p.grad.clone() for p in params]

    whole = step(lambda b, i: editor_base.Editor.training_step(editor, b, i), 100)  # every row in one pass
    assert whole[1]["train/loss_loc"] > 0 and float(whole[2][0].abs().max()) > 0
    for chunk in (1, 2):
        loss, values, grads = step(editor.training_step, chunk)
        assert loss == pytest.approx(whole[0], rel=1e-5)
        for key in ("train/loss_edit", "train/loss_loc", "train/es_equiv"):
            assert values[key] == pytest.approx(whole[1][key], rel=1e-4, abs=1e-7), key
        for got, want in zip(grads, whole[2], strict=True):  # float32 solves, summed in another order
            assert_relatively_close(got, want, 3e-3)


def test_independent_edits_and_row_by_row_editing_are_refused():
    with pytest.raises(ConfigError, match="MALMEN: independent_edits"):
        make(independent_edits=True)
    with pytest.raises(NotImplementedError):
        make().edit_rowwise(FACT["edit"])


def test_optimizer_groups_and_checkpointed_parameters():
    editor = make(lr_lr=3e-5)
    groups = editor.configure_optimizers().param_groups
    assert groups[1]["params"] == [editor.alpha] and groups[1]["lr"] == 3e-5
    assert any(p is editor.log_lambda for p in groups[0]["params"])
    assert len(groups[0]["params"]) == len(list(editor.transforms.parameters())) + 1
    restored = MALMEN(**editor.hparams)  # the saved hyperparameters rebuild the same editor
    assert restored.state_dict().keys() == editor.state_dict().keys()


# ------------------------------------------------------------------------------------------ (6) memory
def _edit_peak(editor: MALMEN, k: int, lm_chunk: int, editor_chunk: int) -> tuple[int, int]:
    """Peak bytes of a k-edit call (edit and meta-gradient backward) and the bytes of its keys K and D."""
    editor.hparams.lm_chunk, editor.hparams.editor_chunk = lm_chunk, editor_chunk
    edit = rows([(f"Fact number {i} says", f"x{i}") for i in range(k)])
    n = int((edit["labels"] != -100).sum())
    key_bytes = sum(4 * n * sum(editor.io_shape[name]) for name in editor.edit_names)
    with TensorPeakMemory() as memory:
        deltas = editor.edit(edit)
        sum((d * d.detach()).sum() for d in deltas.values()).backward()
    return memory.peak, key_bytes


def test_peak_memory_of_a_k_edit_call_grows_only_by_the_keys_and_values():
    editor = filled(make(edit_lr=0.1))
    measured = {k: _edit_peak(editor, k, lm_chunk=8, editor_chunk=64) for k in (8, 64, 256)}
    rest = {k: peak - key_bytes for k, (peak, key_bytes) in measured.items()}
    print({k: (f"peak {p / 2**10:.0f} KiB", f"K+D {b / 2**10:.0f} KiB") for k, (p, b) in measured.items()})
    key_bytes = measured[256][1]
    assert key_bytes > 30 * measured[8][1]  # the keys do grow with k
    # beyond K and D, at most one weight's K and D more (while they are concatenated): bounded by the chunks
    per_weight = key_bytes / len(editor.edit_names)
    assert rest[256] - rest[8] <= per_weight
    assert rest[64] - rest[8] <= per_weight
    # without chunks the same call holds every row's activations: the measurement sees it
    unchunked, _ = _edit_peak(editor, 256, lm_chunk=256, editor_chunk=100_000)
    assert unchunked - key_bytes > 10 * rest[256]


def _step_peak(editor: MALMEN, k: int, lm_chunk: int) -> tuple[int, int]:
    """Peak bytes of a k-edit training step (with its backward) and the bytes of its keys K and D."""
    editor.hparams.lm_chunk, editor.hparams.editor_chunk = lm_chunk, 64
    words = ["red", "green", "blue", "black", "white", "grey", "pink", "gold"]  # rows as wide for every k
    step = {
        "edit": rows([(f"Fact number {words[i % 8]} says", words[i // 8 % 8]) for i in range(k)]),
        "equiv": rows([(f"Fact {words[i % 8]} is that it says", words[i // 8 % 8]) for i in range(k)]),
        "loc": rows([(f"Unrelated sentence {words[i % 8]} ends with", "blue") for i in range(k)]),
    }
    step["equiv"]["edit_index"] = step["loc"]["edit_index"] = torch.arange(k)
    n = int((step["edit"]["labels"] != -100).sum())
    key_bytes = sum(4 * n * sum(editor.io_shape[name]) for name in editor.edit_names)
    with TensorPeakMemory() as memory:
        editor.training_step(step, 0).backward()
    return memory.peak, key_bytes


def test_peak_memory_of_a_k_edit_training_step_grows_only_by_the_keys_and_values():
    editor = filled(make(edit_lr=0.1))
    measured = {k: _step_peak(editor, k, lm_chunk=8) for k in (8, 64, 256)}
    rest = {k: peak - key_bytes for k, (peak, key_bytes) in measured.items()}
    print({k: (f"peak {p / 2**10:.0f} KiB", f"K+D {b / 2**10:.0f} KiB") for k, (p, b) in measured.items()})
    per_weight = measured[256][1] / len(editor.edit_names)
    assert rest[256] - rest[8] <= per_weight and rest[64] - rest[8] <= per_weight
    unchunked, key_bytes = _step_peak(editor, 256, lm_chunk=256)  # every row's activations at once
    assert unchunked - key_bytes > 4 * rest[256]


# ------------------------------------------------------------------------------------------ (7) options
@pytest.fixture
def no_base(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the base model was loaded before the options were checked")

    monkeypatch.setattr(editor_base, "load_base_model", refuse)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(lm_chunk=0), "MALMEN: lm_chunk must be at least 1, got 0"),
        (dict(editor_chunk=-2), "MALMEN: editor_chunk must be at least 1, got -2"),
        (dict(edit_lr=0.0), "MALMEN: edit_lr .* must be positive"),
        (dict(edit_lr=float("nan")), "MALMEN: edit_lr"),
        (dict(lr_lr=-1.0), "MALMEN: lr_lr"),
        (dict(log_lambda=float("inf")), "MALMEN: log_lambda .* must be finite"),
        (dict(rank=0), "MALMEN: rank must be at least 1"),
        (dict(combine=True, x_only=True), "MALMEN: x_only.*combine"),
    ],
)
def test_bad_options_are_config_errors_naming_the_option(no_base, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MALMEN(base_model="tiny-random-llama", **kwargs)


def test_the_cli_selects_malmen_by_name_and_reports_a_bad_chunk_in_one_line(
    tmp_path, monkeypatch, capsys, no_argv
):
    from pathlib import Path

    from mendlight.cli import main

    monkeypatch.chdir(tmp_path)
    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny_debug.yaml"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "fit",
                "-c",
                str(tiny),
                "--model=MALMEN",
                "--model.init_args.lm_chunk=0",
                "--trainer.max_steps=1",
            ]
        )
    assert exc.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mendlight: error:")]
    assert lines == ["mendlight: error: MALMEN: lm_chunk must be at least 1, got 0"]
