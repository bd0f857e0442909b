"""A short supervised warm start: teach a model the prompt format's tags on a suite's train split.

A random tiny model never writes `<REASONING>` or `<SOLUTION>`, so every group's rewards are equal,
every advantage is zero and RL has nothing to learn from. A few dozen steps of supervised fine-tuning
on worked answers in the format gives it a starting point that RL can improve; the demo uses it, and
says so. Targets are built from the item itself: the worked expression where the suite has one
(synth_arith), a fixed line otherwise, then the gold answer.

    warm_start(model_dir, out_dir, items, steps=40)   # a full model directory, loadable anywhere
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from core.formats import PROMPT_FORMATS
from harness.images import decode
from harness.prompts import messages, prompt_text
from suites import get_suite
from suites.base import Item


def worked_reasoning(item: Item) -> str:
    """Short on purpose: a tiny model learns the tags from it in a few dozen steps."""
    meta = item.meta or {}
    if meta.get("expression"):
        return f"{meta['expression']} = {item.gold}"
    return "Read the chart."


def target_text(item: Item, prompt_format: str) -> str:
    fmt = PROMPT_FORMATS[prompt_format]
    (r_open, r_close), (a_open, a_close) = fmt.reasoning_tags, fmt.answer_tags
    return f"{r_open}{worked_reasoning(item)}{r_close}\n{a_open}{item.gold}{a_close}"


def _example(processor: Any, item: Item, prompt_format: str) -> dict[str, Any]:
    """input_ids/labels (+ pixel inputs): the loss covers the assistant's answer and its end token."""
    fmt = PROMPT_FORMATS[prompt_format]
    chat = messages(prompt_text(item, get_suite(item.suite), fmt), item.image_bytes is not None)
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    answer = target_text(item, prompt_format) + processor.tokenizer.eos_token
    images = [decode(item.image_bytes)] if item.image_bytes else None
    full = processor(text=[prompt + answer], images=images, return_tensors="pt")
    n_prompt = processor(text=[prompt], images=images, return_tensors="pt")["input_ids"].shape[1]
    labels = full["input_ids"].clone()
    labels[:, :n_prompt] = -100
    return {**full, "labels": labels}


def warm_start(model_dir: str | Path, out: str | Path, items: list[Item], *, steps: int = 40,
               learning_rate: float = 3e-3, prompt_format: str = "reasoning-solution", seed: int = 0,
               echo=None) -> Path:
    """Full fine-tuning, one example per step (images of different sizes need no padding logic), AdamW
    with linear decay. Saves model + processor to `out` and returns it."""
    import torch

    from harness.models import load_model_and_processor, resolve_model

    torch.manual_seed(seed)
    # float32 on the CPU: full fine-tuning of a tiny model, where half precision would lose the updates.
    model, processor = load_model_and_processor(resolve_model(str(model_dir)), dtype=torch.float32, device="cpu")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / steps)
    order = random.Random(seed).sample(range(len(items)), len(items))
    losses = []
    for step in range(steps):
        batch = _example(processor, items[order[step % len(order)]], prompt_format)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if echo and (step + 1) % max(1, steps // 5) == 0:
            recent = losses[-max(1, steps // 5):]
            echo(f"warm start step {step + 1}/{steps}: loss {sum(recent) / len(recent):.3f}")
    out = Path(out)
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
