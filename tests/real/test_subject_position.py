"""The subject's last token on SmolLM2's real tokenizer, where a token can run past the subject's end."""

import pytest

from mendlight.data.encoding import CausalEncoder
from mendlight.models.loading import load_tokenizer

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def encoder() -> CausalEncoder:
    return CausalEncoder(load_tokenizer("smollm2-135m"), max_length=64)


@pytest.mark.parametrize(
    ("prompt", "subject", "up_to"),
    [
        ("Q: In which country is Boende Airport? A:", "Boende Airport", "in which country is Boende Airport"),
        # "'?" is one token: the token holding the subject's last character runs past it
        ("Q: What is the ISO 3166-2 code of Tverskaya oblast'? A:", "Tverskaya oblast'", "oblast'?"),
        ("Boende Airport is one of the airports of", "Boende Airport", "Boende Airport"),
    ],
)
def test_the_token_holding_the_subjects_last_character(encoder, prompt, subject, up_to):
    row = encoder.pair(prompt, "Morocco")
    position = encoder.subject_position(row.input_ids, prompt, subject)
    assert encoder.tok.decode(row.input_ids[: position + 1]).lower().endswith(up_to.lower())
    assert subject[-1] in encoder.tok.decode(row.input_ids[position : position + 1])


def test_no_position_without_the_subject_or_with_a_prompt_cut_on_its_left(encoder):
    prompt = "Q: In which country is Boende Airport? A:"
    row = encoder.pair(prompt, "Morocco")
    assert encoder.subject_position(row.input_ids, prompt, None) == -1
    assert encoder.subject_position(row.input_ids, prompt, "Atlantis") == -1
    cut = CausalEncoder(encoder.tok, max_length=6).pair(prompt, "Morocco")  # the prompt loses its start
    assert encoder.subject_position(cut.input_ids, prompt, "Boende Airport") == -1
