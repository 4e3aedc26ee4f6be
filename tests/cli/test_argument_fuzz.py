"""Generated bad arguments never end in a traceback: a run either works (0) or is refused (2).

Each example runs ``mendlight fit`` in-process on configs/tiny_debug.yaml with Lightning's ``fast_dev_run``
(one training and one validation batch) and a few options set to generated values: out-of-range numbers,
non-finite floats, wrong types, unknown names.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mendlight.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"

INT_OPTIONS = [
    "data.init_args.n_edits",
    "data.init_args.eval_n_edits",
    "data.init_args.n_loc",
    "data.init_args.max_length",
    "data.init_args.max_loc_length",
    "data.init_args.max_train_records",
    "data.init_args.max_eval_records",
    "data.init_args.seed",
    "model.init_args.rank",
    "model.init_args.n_hidden",
    "model.init_args.n_samples",
    "model.init_args.sample_tokens",
    "model.init_args.sequential",
    "model.init_args.max_nonfinite_steps",
]
FLOAT_OPTIONS = ["model.init_args.edit_lr", "model.init_args.lr_lr", "model.init_args.c_edit"]
TEXT_OPTIONS = [
    "model.init_args.init",
    "model.init_args.dtype",
    "model.init_args.base_model",
    "data.init_args.dataset",
]

numbers = st.one_of(st.integers(-3, 5), st.sampled_from([0, 1, 2, 3, 1000, -1]))
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, -1.0, 1e-3]),
)
texts = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r\x00"), max_size=12),
    st.sampled_from(["tiny-random-nosuch", "float8", "xavier", "/no/such/dir", "facts", "{", "[1, 2]"]),
)
option = st.one_of(
    st.tuples(st.sampled_from(INT_OPTIONS), numbers.map(str)),
    st.tuples(st.sampled_from(FLOAT_OPTIONS), floats.map(lambda x: "nan" if math.isnan(x) else repr(x))),
    st.tuples(st.sampled_from(INT_OPTIONS + FLOAT_OPTIONS), texts),
    st.tuples(st.sampled_from(TEXT_OPTIONS), texts),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(options=st.lists(option, min_size=1, max_size=3))
def test_generated_arguments_never_end_in_a_traceback(options, capsys):
    args = ["fit", "-c", str(TINY), "--trainer.fast_dev_run", "true"]
    for name, value in options:
        args += [f"--{name}", value]
    cwd, argv = os.getcwd(), sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        sys.argv = ["mendlight"]
        try:
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            os.chdir(cwd)
            sys.argv = argv
    err = capsys.readouterr().err
    assert code in (0, 2), (options, err[-3000:])
    assert "Traceback" not in err, (options, err[-3000:])
    if code == 2:
        assert "error:" in err, (options, err[-3000:])
