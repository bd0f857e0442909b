"""Model loading, one way for evaluation and training: where a model lives, its dtype and device, THE
4-bit configuration, the model and its processor, and the vision tokens a completion must not hold.

    model = resolve_model("runs/gspo/checkpoint-500")        # an adapter dir: base from adapter_config.json
    model = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct", revision="a1b2c3d")  # a Hub id, pinned
    model.base.location, model.adapter                        # ("Qwen/...", ModelSource(...) or None)
    device = pick_device("auto"); dtype = pick_dtype("auto", device)
    net, processor = load_model_and_processor(model, dtype=dtype, device=device, load_in_4bit=True)
    vision_token_ids(processor)                               # [ids of <|vision_start|>, <|image_pad|>, ...]
    image_pad_id(processor)                                   # the id of <|image_pad|>

The backends, both trainer engines, the LoRA merge and the warm start all load through here, so a QLoRA
adapter is evaluated on a base quantized exactly as the one it was trained on: `bnb_4bit_config` is the
only 4-bit configuration (NF4 with double quantization, compute in the load dtype: the QLoRA recipe,
and the values Unsloth's loader uses). Heavy libraries (torch, transformers, peft) load inside the
functions, so resolving a source costs no torch import.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BackendError, ConfigError, ModelError
from harness.checkpoints import read_checkpoint

# dtype names accepted anywhere a dtype is asked for -> the torch attribute
DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
          "half": "float16", "float32": "float32", "fp32": "float32"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
ADAPTER_CONFIG_FILE = "adapter_config.json"
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
# Qwen-VL's image and video placeholders: a completion holding one breaks the next forward pass (image
# features vs tokens mismatch). A trained checkpoint never emits them; a random one does.
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
# The manifest's name for the 4-bit configuration below.
QUANTIZATION_LABEL = "bnb-nf4-dq"


def first_line(exc: BaseException) -> str:
    """A loader exception as one short line (transformers' messages run to many lines)."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


@dataclass(frozen=True)
class ModelSource:
    """Where a model or adapter lives: a local directory, or a Hub repo id (with revision)."""

    location: str
    revision: str | None
    local: bool
    adapter_config: dict[str, Any] | None  # set when this is a PEFT adapter

    @property
    def is_adapter(self) -> bool:
        return self.adapter_config is not None

    def hub_options(self) -> dict[str, Any]:
        """from_pretrained's revision argument: only a Hub repo has revisions."""
        return {"revision": self.revision} if self.revision and not self.local else {}


@dataclass(frozen=True)
class ResolvedModel:
    """A base model and, optionally, the LoRA adapter applied on top of it."""

    base: ModelSource
    adapter: ModelSource | None = None


def hub_file(repo: str, filename: str, revision: str | None) -> Path | None:
    """A file of a Hub repo (downloaded or cached), None if the repo has no such file."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo, filename, revision=revision))
    except RemoteEntryNotFoundError:
        return None
    except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError) as exc:
        raise ModelError(f"{repo!r} (revision {revision or 'main'}) is neither a local directory nor a "
                         f"Hub repository: {first_line(exc)}") from exc
    except LocalEntryNotFoundError as exc:
        # The Hub is out of reach; a cached repo without this file is fine, an uncached one is not.
        if isinstance(try_to_load_from_cache(repo, "config.json", revision=revision), str):
            return None
        raise ModelError(f"{repo!r} is not a local directory, and it cannot be fetched from the Hugging Face "
                         f"Hub (offline or unreachable) nor found in the local cache; download it first "
                         f"or pass a local path") from exc


def check_readable(folder: Path, what: str = "model") -> None:
    """Every file of a local model or adapter can be opened: a file another user saved as 0600 must say
    permission denied here, not 'No such file or directory' from deep inside a loader."""
    try:
        files = [p for p in folder.iterdir() if p.is_file()]
        for file in files:
            with open(file, "rb"):
                pass
    except PermissionError as exc:
        where = Path(exc.filename) if exc.filename else folder
        try:
            owner = f"owner uid {where.stat().st_uid}, mode {where.stat().st_mode & 0o777:04o}"
        except OSError:
            owner = "unreadable"
        raise ModelError(f"cannot read {what} file {where}: permission denied ({owner}); ask its owner to "
                         "make it readable (chmod a+r) or use a copy") from None
    except OSError as exc:
        raise ModelError(f"cannot read {what} directory {folder}: {exc.strerror}") from None


def resolve_source(ref: str, revision: str | None = None, what: str = "model") -> ModelSource:
    """A local model or adapter directory, or a Hub id; ModelError when it is neither. `what` names it
    in messages ("model", "adapter")."""
    path = Path(ref).expanduser()
    try:
        exists = path.exists()
    except PermissionError:
        raise ModelError(f"cannot read {what} directory {ref}: permission denied on a folder above it") from None
    if exists:
        if not path.is_dir():
            raise ModelError(f"{what} path {ref} is a file; pass the {what}'s directory")
        check_readable(path, what)
        adapter_file = path / ADAPTER_CONFIG_FILE
        if adapter_file.is_file():
            return ModelSource(str(path), revision, True, json.loads(adapter_file.read_text()))
        if not (path / "config.json").is_file():
            raise ModelError(f"{ref} holds neither config.json (a model) nor {ADAPTER_CONFIG_FILE} (a LoRA adapter)")
        return ModelSource(str(path), revision, True, None)
    if ref.startswith((".", "/", "~")) or not HUB_ID.match(ref):
        raise ModelError(f"{what} directory {ref} does not exist")
    adapter_file = hub_file(ref, ADAPTER_CONFIG_FILE, revision)
    adapter_config = json.loads(adapter_file.read_text()) if adapter_file else None
    return ModelSource(ref, revision, False, adapter_config)


def resolve_model(model: str, revision: str | None = None, adapter: str | None = None) -> ResolvedModel:
    """The base and adapter to load. `model` may itself be an adapter: its base is the one named in its
    adapter_config.json (base_model_name_or_path, at the revision recorded there, or else at the one
    its checkpoint record names: an adapter saved by Unsloth records no revision)."""
    source = resolve_source(str(model), revision)
    if source.is_adapter:
        if adapter:
            raise ConfigError(f"{model} is itself a LoRA adapter; pass its base model as the model "
                              f"to add adapter {adapter}")
        adapter_source = source
        base_ref = source.adapter_config.get("base_model_name_or_path")
        if not base_ref:
            raise ModelError(f"adapter {model} does not name its base model (base_model_name_or_path)")
        base_revision = source.adapter_config.get("revision") or _recorded_base_revision(source)
        try:
            base = resolve_source(base_ref, base_revision)
        except ModelError as exc:
            raise ModelError(f"adapter {model} names base model {base_ref!r}, which cannot be loaded "
                             f"({exc}); pass the base as the model and the adapter with adapter=") from exc
    else:
        base = source
        adapter_source = resolve_source(str(adapter), None, what="adapter") if adapter else None
        if adapter_source is not None and not adapter_source.is_adapter:
            raise ModelError(f"adapter {adapter} has no {ADAPTER_CONFIG_FILE} (not a PEFT adapter)")
    if base.is_adapter:
        raise ModelError(f"base model {base.location} is itself an adapter")
    return ResolvedModel(base, adapter_source)


def _recorded_base_revision(adapter: ModelSource) -> str | None:
    info = read_checkpoint(adapter.location) if adapter.local else None
    return (info or {}).get("base_model", {}).get("revision")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_device(device: str = "auto") -> str:
    """auto (CUDA when present, else CPU), cpu, cuda or cuda:N; ConfigError for an absent GPU."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cpu":
        return device
    if re.fullmatch(r"cuda(:\d+)?", device):
        if not cuda_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
        return device
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def pick_dtype(dtype: str, device: str):
    """The torch dtype: auto is float32 on CPU, bfloat16 on a GPU that has it, else float16."""
    import torch

    if dtype == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use auto, bfloat16, float16 or float32")
    return getattr(torch, DTYPES[dtype])


def require_4bit_support() -> None:
    """bitsandbytes 4-bit weights need a CUDA GPU and the bitsandbytes package."""
    if not cuda_available():
        raise ModelError("4-bit loading needs a CUDA GPU; drop load_in_4bit on this machine")
    try:
        import bitsandbytes  # noqa: F401  (transformers needs it to load with the config below)
    except ImportError as exc:
        raise BackendError("4-bit loading needs bitsandbytes; install it with `uv sync --extra gpu`") from exc


def bnb_4bit_config(compute_dtype):
    """THE 4-bit configuration, for training (QLoRA) and evaluation alike: NF4 weights with double
    quantization (the quantization constants quantized too), matmuls in the load dtype."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def model_load_options(source: ModelSource, *, dtype, device: str, load_in_4bit: bool = False,
                       trust_remote_code: bool = False) -> dict[str, Any]:
    """The keyword arguments of the base model's from_pretrained (every loader here passes these)."""
    options: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code, **source.hub_options()}
    if load_in_4bit:
        require_4bit_support()
        options["quantization_config"] = bnb_4bit_config(dtype)
    if device == "cuda":
        import torch

        # The current GPU: each training process under accelerate owns the one its state selected, where a
        # bare "cuda" would load every process's copy onto the first GPU before the trainer moves it.
        device = f"cuda:{torch.cuda.current_device()}"
    if device != "cpu":
        options["device_map"] = {"": device}  # straight onto the GPU, not through host memory
    return options


def load_model(model: ResolvedModel, *, dtype, device: str, load_in_4bit: bool = False,
               trust_remote_code: bool = False, adapter_trainable: bool = False):
    """The base model (4-bit when asked), with its adapter applied when there is one."""
    from transformers import AutoModelForImageTextToText

    base = model.base
    options = model_load_options(base, dtype=dtype, device=device, load_in_4bit=load_in_4bit,
                                 trust_remote_code=trust_remote_code)
    try:
        net = AutoModelForImageTextToText.from_pretrained(base.location, **options)
    except Exception as exc:  # any loader failure (missing files, unknown architecture, bad weights)
        raise ModelError(f"cannot load model {base.location}: {first_line(exc)}") from exc
    if model.adapter is not None:
        from peft import PeftModel

        try:
            net = PeftModel.from_pretrained(net, model.adapter.location, is_trainable=adapter_trainable,
                                            **model.adapter.hub_options())
        except Exception as exc:
            raise ModelError(f"cannot apply adapter {model.adapter.location} to {base.location}: "
                             f"{first_line(exc)}") from exc
    if device == "cpu":
        net.to(device)
    return net


def load_processor(model: ResolvedModel, trust_remote_code: bool = False, padding_side: str = "left"):
    """The multimodal processor; a trainer saves one beside its adapter (maybe with its own chat template),
    which is preferred to the base's. Left padding: batched generation needs it."""
    from transformers import AutoProcessor

    sources = [model.base]
    adapter = model.adapter
    if adapter is not None and (not adapter.local or any(
            (Path(adapter.location) / name).is_file() for name in PROCESSOR_FILES)):
        sources.insert(0, adapter)
    for i, source in enumerate(sources):
        try:
            processor = AutoProcessor.from_pretrained(source.location, trust_remote_code=trust_remote_code,
                                                      **source.hub_options())
        except Exception as exc:
            if i + 1 < len(sources):
                continue
            raise ModelError(f"cannot load the processor of {source.location}: {first_line(exc)}") from exc
        if not hasattr(processor, "tokenizer") or not getattr(processor, "chat_template", None):
            raise ModelError(f"{source.location} has no multimodal processor with a chat template")
        processor.tokenizer.padding_side = padding_side
        return processor
    raise AssertionError("unreachable: sources is never empty")


def load_model_and_processor(model: ResolvedModel, *, dtype, device: str, load_in_4bit: bool = False,
                             trust_remote_code: bool = False, adapter_trainable: bool = False):
    net = load_model(model, dtype=dtype, device=device, load_in_4bit=load_in_4bit,
                     trust_remote_code=trust_remote_code, adapter_trainable=adapter_trainable)
    return net, load_processor(model, trust_remote_code)


def merge_adapter(model: ResolvedModel, out: Path, dtype: str = "bfloat16") -> Path:
    """The adapter merged into its base, saved as a plain 16-bit model with the processor (on the CPU:
    merging needs no GPU). The base is loaded exactly as evaluation loads it for this adapter."""
    if model.adapter is None:
        raise ModelError(f"{model.base.location} has no adapter to merge")
    merged = load_model(model, dtype=pick_dtype(dtype, "cpu"), device="cpu").merge_and_unload()
    merged.save_pretrained(out)
    load_processor(model).save_pretrained(out)
    return out


def image_pad_id(processor: Any) -> int | None:
    """Id of the one placeholder token that stands for an image before the processor expands it."""
    tokenizer = getattr(processor, "tokenizer", processor)
    return tokenizer.get_vocab().get("<|image_pad|>")


def vision_token_ids(processor: Any) -> list[int]:
    """Ids of the vision placeholder tokens in this processor's vocabulary (to suppress in generation)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in VISION_TOKENS if t in vocab]
