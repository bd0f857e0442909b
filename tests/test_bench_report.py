"""Speed and size of `harness report` at the scale it is built for: 4 runs x 1,000 items with
thumbnails, 1-2 k character responses, MathVista-style breakdown metadata and a checkpoint with a
training log. The page must stay under 15 MB. Time it with:

    uv run pytest tests/test_bench_report.py --benchmark-enable

(with benchmarks disabled, as by default, the report is still built and checked once).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from reports.page import build_report
from tests.fixtures.run_fixture import write_checkpoint, write_run

N_ITEMS = 1000
MAX_HTML_BYTES = 15 * 1024 * 1024
WORDS = ("the", "bar", "chart", "shows", "value", "of", "so", "we", "add", "subtract", "height", "angle",
         "triangle", "therefore", "answer", "is", "first", "compute", "area", "equals", "then", "step")


def _chart_jpeg(rng: random.Random) -> bytes:
    """A 256 px chart-like thumbnail, like the ones real runs keep (bars, axes, some text)."""
    image = Image.new("RGB", (256, 192), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.line((20, 170, 250, 170), fill=(0, 0, 0), width=2)
    draw.line((20, 10, 20, 170), fill=(0, 0, 0), width=2)
    for k in range(rng.randint(3, 8)):
        top = rng.randint(20, 160)
        color = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
        draw.rectangle((30 + 27 * k, top, 50 + 27 * k, 169), fill=color)
        draw.text((30 + 27 * k, 175), str(rng.randint(1, 99)), fill=(0, 0, 0))
    draw.text((60, 2), f"Figure {rng.randint(1, 999)}", fill=(40, 40, 40))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _response(rng: random.Random, answer: str) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(180, 360)))
    return f"<REASONING>{words}</REASONING><SOLUTION>{answer}</SOLUTION>"


def _items(rng: random.Random, accuracy: float) -> list[dict]:
    items = []
    for i in range(N_ITEMS):
        correct = rng.random() < accuracy
        multi = i % 2 == 0
        items.append({
            "sample_id": str(i + 1), "correct": correct, "gold": "B" if multi else str(i % 50),
            "choices": ["12", "15", "18", "21"] if multi else None, "wrong": "C" if multi else "7",
            "question": f"Question {i + 1}: " + " ".join(rng.choice(WORDS) for _ in range(40)),
            "response": _response(rng, "B" if correct else "C"), "image": True,
            "n_output_tokens": rng.randint(200, 1024),
            "finish_reason": "length" if rng.random() < 0.03 else "stop",
            "meta": {"task": rng.choice(["figure question answering", "math word problem", "geometry problem solving",
                                         "textbook question answering", "visual question answering"]),
                     "skills": rng.sample(["arithmetic reasoning", "algebraic reasoning", "statistical reasoning",
                                           "geometry reasoning", "numeric commonsense", "logical reasoning"], 2),
                     "grade": rng.choice(["elementary school", "high school", "college"]),
                     "question_type": "multi_choice" if multi else "free_form",
                     "answer_type": "text" if multi else "integer"},
        })
    return items


def write_four_runs(root: Path) -> list[Path]:
    """The baseline and three candidates (the first of them a GSPO checkpoint with its training log)."""
    rng = random.Random(0)
    ckpt = root / "ckpt"
    log = [{"step": s, "reward": 1 + s / 200, "rewards/format_reward/mean": 0.8 + s / 2000,
            "rewards/correctness_reward/mean": 0.5 + s / 500, "completions/mean_length": 600 - s,
            "completions/clipped_ratio": 0.05, "clip_ratio/region_mean": 0.002, "kl": 0.01 * s,
            "step_time": 30 + rng.random(), "peak_gpu_memory_mib": 40000.0} for s in range(1, 201)]
    evals = []
    for step in (50, 100, 150, 200):
        write_run(ckpt / "evals", f"step-{step:06d}",
                  {"mathvista_testmini": [{"sample_id": str(i), "correct": rng.random() < 0.5 + step / 1000}
                                          for i in range(100)]})
        evals.append({"step": step, "run_dir": f"evals/step-{step:06d}"})
    write_checkpoint(ckpt, "gspo", log, evals)
    checkpoint = {"dir": str(ckpt), "algo": "gspo", "engine": "trl", "base_model": "Qwen/Qwen2.5-VL-7B-Instruct",
                  "step": 200, "effectively_on_policy": False, "overlap": None}
    paths = [write_run(root, f"run{k}", {"mathvista_testmini": _items(rng, 0.5 + 0.05 * k)},
                       model="Qwen/Qwen2.5-VL-7B-Instruct", checkpoint=checkpoint if k == 1 else None)
             for k in range(4)]
    images = {}  # one realistic thumbnail per item, the same in every run (as with real runs)
    for path in paths:
        for file in sorted((path / "images").iterdir()):
            file.write_bytes(images.setdefault(file.name, _chart_jpeg(rng)))
    return paths


@pytest.fixture(scope="module")
def four_runs(tmp_path_factory) -> list[Path]:
    return write_four_runs(tmp_path_factory.mktemp("bench-report"))


def test_report_of_four_runs_of_1000_items(benchmark, four_runs, tmp_path):
    out = tmp_path / "report.html"
    result = benchmark.pedantic(build_report, args=(four_runs, out), rounds=3, iterations=1)
    assert result == out
    size = out.stat().st_size
    assert size < MAX_HTML_BYTES, f"report is {size / 1e6:.1f} MB"
    benchmark.extra_info["html_mb"] = round(size / 1e6, 2)
    page = out.read_text(encoding="utf-8")
    assert page.count('"s":"mathvista_testmini"') == N_ITEMS  # every item embedded once
    assert page.count(':"data:image/jpeg;base64,') == N_ITEMS  # every thumbnail embedded once
