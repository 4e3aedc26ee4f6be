"""experiments/malmen_capacity.py: the share of MALMEN's value shifts a ridge update reaches."""

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "malmen_capacity.py"
spec = importlib.util.spec_from_file_location("malmen_capacity", SCRIPT)
capacity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(capacity)


def test_fewer_keys_than_dimensions_are_reached_exactly_in_the_least_squares_limit():
    torch.manual_seed(0)
    keys, values = torch.randn(10, 32, dtype=torch.float64), torch.randn(10, 8, dtype=torch.float64)
    assert abs(capacity.reach(keys, values, torch.tensor(-30.0), chunk=4) - 1.0) < 1e-6
    # a strong regulariser shrinks the update: only part of V is reached
    assert 0.0 < capacity.reach(keys, values, torch.tensor(5.0), chunk=4) < 0.9


def test_more_keys_than_dimensions_reach_what_least_squares_reaches():
    torch.manual_seed(0)
    keys, values = torch.randn(64, 16, dtype=torch.float64), torch.randn(64, 8, dtype=torch.float64)
    solution = torch.linalg.lstsq(keys, values).solution
    expected = 1 - float(
        torch.linalg.matrix_norm(keys @ solution - values) / torch.linalg.matrix_norm(values)
    )
    reached = capacity.reach(keys, values, torch.tensor(-30.0), chunk=16)
    assert abs(reached - expected) < 1e-6 and reached < 0.5  # 64 random targets in 16 dimensions


def test_table_averages_each_weight_kind_over_the_edited_blocks():
    rows = [
        {
            "k": 25,
            "weight": f"model.layers.{i}.mlp.up_proj.weight",
            "keys": 50 + i,
            "key_size": 576,
            "lambda": 1.0,
            "reached": 0.8 + 0.1 * i,
            "reachable": 1.0,
        }
        for i in range(2)
    ]
    lines = capacity.table(rows).splitlines()
    assert lines[2] == "| 25 | up_proj (×2) | 50 | 576 | 1 | 0.850 | 1.000 |"
