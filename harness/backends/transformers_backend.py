"""The transformers backend: `model.generate` on batches of chat requests, with optional LoRA and 4-bit.

    backend = TransformersBackend("Qwen/Qwen2.5-VL-7B-Instruct", batch_size=8)
    backend = TransformersBackend("runs/gspo/checkpoint-500")   # a LoRA dir: base read from its config
    [c] = backend.generate([Request("geo-17", messages, [image])], GenerationParams(max_new_tokens=64))
    c == Completion(request_id="geo-17", attempt=0, text="<think>...", n_prompt_tokens=312,
                    n_output_tokens=64, finish_reason="length", latency_s=1.8)

Requests are batched with left padding; a batch's completions come back in request order, then
attempt order. The random seed is set before every batch from the batch's own request ids, so a batch
samples the same completions whatever ran before it (a resumed run redoes a batch identically).
"""

from __future__ import annotations

import gc
import time
import zlib
from typing import Any

import torch

from core.errors import BackendError, ConfigError, ModelError
from harness.backends import Completion, GenerationParams, Request
from harness.models import (
    QUANTIZATION_LABEL,
    load_model,
    load_processor,
    pick_device,
    pick_dtype,
    resolve_model,
)


def _count_image_parts(messages: list[dict[str, Any]]) -> int:
    return sum(1 for message in messages if isinstance(message.get("content"), list)
               for part in message["content"] if part.get("type") in ("image", "image_url"))


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str, *, revision: str | None = None, adapter: str | None = None,
                 dtype: str = "auto", device: str = "auto", load_in_4bit: bool = False, batch_size: int = 8,
                 trust_remote_code: bool = False):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        started = time.perf_counter()
        self.model_ref, self.revision, self.batch_size = str(model), revision, batch_size
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.quantization = QUANTIZATION_LABEL if load_in_4bit else None

        resolved = resolve_model(self.model_ref, revision, adapter)
        self.base_model = resolved.base.location
        self.adapter = resolved.adapter.location if resolved.adapter else None
        self.model = load_model(resolved, dtype=self.dtype, device=self.device, load_in_4bit=load_in_4bit,
                                trust_remote_code=trust_remote_code).eval()
        self.processor = load_processor(resolved, trust_remote_code)
        self.tokenizer = self.processor.tokenizer
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(set(eos))
        if not self.eos_ids:
            raise ModelError(f"{self.base_model} defines no end-of-sequence token")
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.model.generation_config.pad_token_id
        self.pad_id = self.pad_id if self.pad_id is not None else self.eos_ids[0]
        if self.device.startswith("cuda"):
            self._warm_up()
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.load_time_s = time.perf_counter() - started  # loading plus the warm-up (engine start)

    def _warm_up(self) -> None:
        """One short generation with an image before any timed work: the first CUDA call pays for
        kernel loading and library start-up, which would otherwise inflate the first batch's latency."""
        from PIL import Image

        image = Image.new("RGB", (64, 64), "white")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "warm up"}]}]
        self._generate_batch([Request("warm-up", messages, [image])], GenerationParams(max_new_tokens=2))

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        if self.model is None:
            raise BackendError("the transformers backend was closed")
        params.check()
        completions: list[Completion] = []
        for start in range(0, len(requests), self.batch_size):
            completions += self._generate_batch(requests[start:start + self.batch_size], params)
        return completions

    def prompt_lengths(self, requests: list[Request]) -> list[int]:
        """Each request's prompt token count, without processing pixels: the chat text's tokens plus
        each image's tokens from its size (iter_completions sorts batches by it)."""
        image_processor = self.processor.image_processor
        per_token = image_processor.merge_size ** 2  # patches merged into one image token
        lengths = []
        for request in requests:
            text = self.processor.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
            n_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            for image in request.images:  # the text holds one placeholder per image
                n_tokens += image_processor.get_number_of_image_patches(image.height, image.width, {}) // per_token - 1
            lengths.append(n_tokens)
        return lengths

    def prompt_token_ids(self, requests: list[Request]) -> list[list[int]]:
        """The prompt token ids the model gets for each request (the image placeholders expanded)."""
        out = []
        for request in requests:
            text = self.processor.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
            inputs = self.processor(text=[text], images=request.images or None, return_tensors="pt")
            out.append(inputs["input_ids"][0].tolist())
        return out

    def _generate_batch(self, batch: list[Request], params: GenerationParams) -> list[Completion]:
        for request in batch:
            if _count_image_parts(request.messages) != len(request.images):
                raise ValueError(f"request {request.request_id}: {_count_image_parts(request.messages)} image "
                                 f"parts in the messages but {len(request.images)} images")
        inputs, options = self._inputs(batch), self._generate_options(params)
        # Seeded from this batch's ids, so its samples do not depend on what ran before it.
        batch_key = "\x1f".join(r.request_id for r in batch).encode()
        torch.manual_seed((params.seed + zlib.crc32(batch_key)) % 2**63)

        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        if cuda:
            torch.cuda.synchronize(self.device)
        latency_s = time.perf_counter() - started

        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = output[:, prompt_len:].tolist()
        prompt_counts = inputs["attention_mask"].sum(dim=1).tolist()
        n_attempts = options["num_return_sequences"]
        eos_ids = set(self.eos_ids)
        completions = []
        for row, tokens in enumerate(new_tokens):  # generate repeats each prompt n times in a row
            request_index, attempt = divmod(row, n_attempts)
            stop_at = None if params.ignore_eos else next(
                (i for i, token in enumerate(tokens) if token in eos_ids), None)
            if params.ignore_eos:
                count, finish = len(tokens), "length"
            elif stop_at is not None:
                count, finish = stop_at + 1, "stop"
            else:
                count, finish = len(tokens), "length"
                while count and tokens[count - 1] == self.pad_id:
                    count -= 1
            completions.append(Completion(
                request_id=batch[request_index].request_id,
                attempt=attempt,
                text=self.tokenizer.decode(tokens[:count], skip_special_tokens=True),
                n_prompt_tokens=int(prompt_counts[request_index]),
                n_output_tokens=count,
                finish_reason=finish,
                latency_s=latency_s,
            ))
        return completions

    def _inputs(self, batch: list[Request]):
        texts = [self.processor.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False)
                 for r in batch]
        images = [image for r in batch for image in r.images] or None
        return self.processor(text=texts, images=images, padding=True, return_tensors="pt").to(self.device)

    def _generate_options(self, params: GenerationParams) -> dict[str, Any]:
        options: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "eos_token_id": self.eos_ids,
                                   "pad_token_id": self.pad_id}
        if params.temperature == 0:
            options.update(do_sample=False, num_return_sequences=1)
        else:
            options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                           top_k=params.top_k, num_return_sequences=params.n)
        if params.ignore_eos:  # a forced length: end-of-sequence ids are masked until max_new_tokens
            options["min_new_tokens"] = params.max_new_tokens
        return options

    def generate_bare(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        """The reference `harness bench --bare` times: for each batch of `batch_size`, the chat template,
        the processor and one plain `model.generate`, nothing else (no seeding, no decoding; completions
        carry token counts and an empty text)."""
        completions = []
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start:start + self.batch_size]
            started = time.perf_counter()
            inputs, options = self._inputs(batch), self._generate_options(params)
            with torch.inference_mode():
                output = self.model.generate(**inputs, **options)
            new_tokens = output[:, inputs["input_ids"].shape[1]:]
            is_end = torch.isin(new_tokens, torch.tensor(self.eos_ids, device=new_tokens.device))
            if params.ignore_eos:
                counts = [new_tokens.shape[1]] * new_tokens.shape[0]
            else:  # up to and including the first end-of-sequence token
                counts = torch.where(is_end.any(dim=1), is_end.int().argmax(dim=1) + 1, new_tokens.shape[1]).tolist()
            latency_s = time.perf_counter() - started
            prompt_counts = inputs["attention_mask"].sum(dim=1).tolist()
            n_attempts = options["num_return_sequences"]
            completions += [Completion(batch[row // n_attempts].request_id, row % n_attempts, "",
                                       int(prompt_counts[row // n_attempts]), int(count), "length", latency_s)
                            for row, count in enumerate(counts)]
        return completions

    def describe(self) -> dict[str, Any]:
        model = self.model
        n_parameters = None
        if model is not None:
            inner = model.get_base_model() if hasattr(model, "get_base_model") else model
            n_parameters = inner.num_parameters()  # counts 4-bit weights at their unpacked size
        generation_defaults = (model.generation_config.to_diff_dict() if model is not None else {})
        generation_defaults.pop("transformers_version", None)
        return {
            "model": self.model_ref,
            "revision": self.revision,
            "adapter": self.adapter,
            "base_model": self.base_model,
            "dtype": str(self.dtype).removeprefix("torch."),
            "quantization": self.quantization,
            "device": self.device,
            "n_parameters": n_parameters,
            "load_time_s": round(self.load_time_s, 3),
            # The checkpoint's own generation settings (e.g. repetition_penalty), which apply under ours.
            "generation_defaults": generation_defaults,
        }

    def memory(self) -> dict[str, Any]:
        """torch's peak counters in this process (the model runs here): allocated and reserved MiB."""
        if not self.device.startswith("cuda"):
            return {"peak_allocated_mib": None, "peak_reserved_mib": None, "note": "no CUDA device"}
        return {"peak_allocated_mib": round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1),
                "peak_reserved_mib": round(torch.cuda.max_memory_reserved(self.device) / 2**20, 1)}

    def close(self) -> None:
        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
