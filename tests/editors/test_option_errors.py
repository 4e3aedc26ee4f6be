"""A bad editor option is one message naming the class and the option (status 2), never a traceback.

Every editor checks its numeric and choice options before it loads the base model; an unknown
``tiny-random-<name>`` or dtype is a model-loading error that lists the valid choices.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import mendlight.editors.base as editor_base
from mendlight.cli import main
from mendlight.editors import ENN, FT, FTKL, KE, MEND, Cache
from mendlight.errors import ConfigError, UserInputError
from mendlight.models.loading import ModelLoadError, load_base_model, resolve_dtype
from mendlight.models.tiny import tiny_model_type
from mendlight.nn import GradientTransform, LowRankIdentityMLP, LowRankLinear

ROOT = Path(__file__).resolve().parents[2]
TINY_CFG = ROOT / "configs" / "tiny_debug.yaml"
TINY = "tiny-random-llama"


def _config(path: Path, editor: str) -> Path:
    """tiny_debug (MEND) as it is, or with ``editor`` and only the options every editor has."""
    cfg = yaml.safe_load(TINY_CFG.read_text())
    if editor != "MEND":
        init = {"base_model": TINY, "n_samples": 2, "sample_tokens": 4}
        cfg["model"] = {"class_path": f"mendlight.editors.{editor}", "init_args": init}
    path.write_text(yaml.safe_dump(cfg))
    return path


# (editor, option, value, words the one error line must contain)
CLI_CASES = [
    ("MEND", "rank", "-5", ["MEND", "rank", "-5"]),
    ("MEND", "n_hidden", "-1", ["MEND", "n_hidden"]),
    ("MEND", "init", "zeros", ["MEND", "init", "'zeros'", "'xavier'"]),
    ("MEND", "edit_lr", "0", ["MEND", "edit_lr", "positive"]),
    ("MEND", "lr_lr", "-1e-3", ["MEND", "lr_lr"]),
    ("MEND", "x_only", "true", ["MEND", "x_only", "combine"]),
    ("MEND", "base_model", "tiny-random-nosuch", ["'tiny-random-nosuch'", "tiny-random-llama"]),
    ("MEND", "dtype", "float8", ["'float8'", "dtype", "bfloat16"]),
    ("ENN", "n_edit_steps", "0", ["ENN", "n_edit_steps"]),
    ("ENN", "edit_lr", "-0.1", ["ENN", "edit_lr"]),
    ("KE", "hidden_dim", "0", ["KE", "hidden_dim"]),
    ("FT", "ft_optimizer", "lbfgs", ["FT", "ft_optimizer", "'lbfgs'", "rmsprop"]),
    ("FT", "grad_clip", "0", ["FT", "grad_clip"]),
    ("FTKL", "loc_split", "training", ["FTKL", "loc_split", "'training'", "train"]),
    ("FTKL", "loc_batch_size", "0", ["FTKL", "loc_batch_size"]),
    ("Cache", "epsilon", "-1", ["Cache", "epsilon"]),
]


@pytest.mark.parametrize(
    ("editor", "option", "value", "words"), CLI_CASES, ids=[f"{c[0]}-{c[1]}" for c in CLI_CASES]
)
def test_a_bad_option_is_one_message_with_status_2(
    tmp_path, monkeypatch, capsys, no_argv, editor, option, value, words
):
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path / f"{editor.lower()}.yaml", editor)
    with pytest.raises(SystemExit) as exc:
        main(["fit", "-c", str(cfg), "--trainer.max_steps", "1", f"--model.init_args.{option}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("mendlight: error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.ckpt"))


# ---------------------------------------------------------------------------------------------- direct
@pytest.fixture
def no_base(monkeypatch):
    """Fail if an editor loads its base model: a bad option must be refused before that."""

    def refuse(*args, **kwargs):
        raise AssertionError("the base model was loaded before the options were checked")

    monkeypatch.setattr(editor_base, "load_base_model", refuse)


DIRECT_CASES = [
    (MEND, dict(rank=0), "MEND: rank"),
    (MEND, dict(n_hidden=-1), "MEND: n_hidden"),
    (MEND, dict(init="orthogonal"), "MEND: init"),
    (MEND, dict(edit_lr=-1e-4), "MEND: edit_lr"),
    (MEND, dict(edit_lr=float("nan")), "MEND: edit_lr"),
    (MEND, dict(lr_lr=-1.0), "MEND: lr_lr"),
    (MEND, dict(combine=True, one_sided=True), "MEND: one_sided.*combine"),
    (MEND, dict(combine=False, x_only=True, delta_only=True), "MEND: x_only and delta_only"),
    (ENN, dict(n_edit_steps=0), "ENN: n_edit_steps"),
    (ENN, dict(edit_lr=0.0), "ENN: edit_lr"),
    (ENN, dict(lr_lr=-1.0), "ENN: lr_lr"),
    (ENN, dict(c_base=-1.0), "ENN: c_base"),
    (KE, dict(hidden_dim=0), "KE: hidden_dim"),
    (KE, dict(condition_dim=-3), "KE: condition_dim"),
    (KE, dict(max_scale=0.0), "KE: max_scale"),
    (FT, dict(ft_optimizer="lbfgs"), "FT: ft_optimizer='lbfgs'"),
    (FT, dict(max_steps=-1), "FT: max_steps"),
    (FT, dict(edit_lr=0.0), "FT: edit_lr"),
    (FT, dict(grad_clip=-1.0), "FT: grad_clip"),
    (FTKL, dict(edit_lr=0.0), "FTKL: edit_lr"),
    (FTKL, dict(loc_batch_size=0), "FTKL: loc_batch_size"),
    (FTKL, dict(c_edit_ft=-0.1), "FTKL: c_edit_ft"),
    (FTKL, dict(loc_split="dev"), "FTKL: loc_split='dev'"),
    (Cache, dict(epsilon=-0.5), "Cache: epsilon"),
    (Cache, dict(epsilon=float("nan")), "Cache: epsilon"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    DIRECT_CASES,
    ids=[f"{c[0].__name__}-{'-'.join(c[1])}" for c in DIRECT_CASES],
)
def test_editors_check_their_options_before_loading_the_base(no_base, cls, kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        cls(base_model=TINY, **kwargs)
    assert isinstance(err.value, ValueError)  # callers catching ValueError keep working


def test_boundary_values_are_accepted():
    assert FT(base_model=TINY, max_steps=0).hparams.max_steps == 0  # no step: the unedited model
    assert MEND(base_model=TINY, rank=1, n_hidden=0, lr_lr=0.0).hparams.lr_lr == 0.0  # α kept fixed
    assert Cache(base_model=TINY, epsilon=0.0).hparams.epsilon == 0.0


def test_an_unknown_tiny_model_is_a_model_load_error_listing_the_choices():
    with pytest.raises(
        ModelLoadError, match="tiny-random-nosuch.*tiny-random-gpt2.*tiny-random-llama"
    ) as err:
        tiny_model_type("tiny-random-nosuch")
    assert isinstance(err.value, UserInputError) and isinstance(err.value, ValueError)
    with pytest.raises(ModelLoadError, match="tiny-random-llama"):
        load_base_model("tiny-random-nosuch")


def test_an_unknown_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match="'float8'.*bfloat16, float16, float32"):
        resolve_dtype("float8")
    assert resolve_dtype("bfloat16") is torch.bfloat16


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LowRankLinear(4, 0), "LowRankLinear: rank"),
        (lambda: LowRankLinear(4, 2, n_modes=0), "LowRankLinear: n_modes"),
        (lambda: LowRankLinear(4, 2, init="zeros"), "LowRankLinear: unknown init 'zeros'"),
        (lambda: LowRankIdentityMLP(4, 2, n_hidden=-1), "LowRankIdentityMLP: n_hidden"),
        (lambda: GradientTransform(4, 6, rank=2, x_only=True), "GradientTransform: combine"),
        (lambda: GradientTransform(4, 6, combine=False, x_only=True, one_sided=True), "exclusive"),
    ],
    ids=["rank", "n_modes", "init", "n_hidden", "combine", "exclusive"],
)
def test_editor_networks_report_bad_options_as_config_errors(build, message):
    with pytest.raises(ConfigError, match=message):
        build()
