import pytest

from mendlight.models.arch import EditParamError, resolve_edit_params, weight_io_shape
from mendlight.models.tiny import build_tiny_model


def test_llama_default_is_gate_up_down_of_last_three_blocks():
    model = build_tiny_model("llama")  # 4 blocks
    names = resolve_edit_params(model)
    assert names == [
        f"model.layers.{i}.mlp.{w}_proj.weight" for i in (1, 2, 3) for w in ("gate", "up", "down")
    ]


def test_gpt2_conv1d_io_shape():
    model = build_tiny_model("gpt2")
    names = resolve_edit_params(model)
    assert names[0] == "transformer.h.1.mlp.c_fc.weight"
    assert weight_io_shape(model, names[0]) == (32, 128)  # Conv1D stores [in, out]
    assert weight_io_shape(model, names[1]) == (128, 32)


def test_glob_override_keeps_order_and_dedupes():
    model = build_tiny_model("llama")
    names = resolve_edit_params(
        model, ["model.layers.3.mlp.down_proj.weight", "model.layers.[23].mlp.*.weight"]
    )
    assert names[0] == "model.layers.3.mlp.down_proj.weight"
    assert len(names) == 6 and len(set(names)) == 6


def test_unknown_name_lists_candidates():
    model = build_tiny_model("llama")
    with pytest.raises(EditParamError, match="matches no weight matrix") as err:
        resolve_edit_params(model, ["model.layers.9.mlp.nope.weight"])
    assert "model.layers.3.mlp.down_proj.weight" in str(err.value)


def test_vector_parameter_rejected():
    model = build_tiny_model("llama")
    with pytest.raises(EditParamError, match="matches no weight matrix"):
        resolve_edit_params(model, ["model.norm.weight"])
