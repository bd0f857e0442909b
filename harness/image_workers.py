"""Image decoding and thumbnails in worker processes, ahead of a streaming engine.

    with ImageWorkers.start() as workers:          # before the generation clock: spawning takes a second
        future = workers.submit(item.image_bytes, (448, 448), run.images_dir, "synth_charts__7.jpg")
        decoded = future.result()                  # DecodedImage: .image() (PIL RGB), .thumbnail, .error
        image = decoded.image()

Why processes and not threads: vLLM's offline engine does its input processing (the image processor
of every request) and its output processing in the harness's own process, in the thread that feeds it,
so any other Python work in this process competes with it for the GIL. On an H200, a run over 1,024
image prompts reached 0.71x a bare `LLM.generate`'s throughput with the decoding inline and 0.86x with
it in four threads (docs/benchmarks/h200.md). In worker processes the feeding thread only copies each
decoded image's pixels out of a pipe (well under a millisecond for 448x448).

When processes cannot be started (no semaphores in a sandbox, say), the same work runs in threads and
`kind` says so; the results are identical either way.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from PIL import Image

from core.errors import StorageError
from harness.images import ImageDecodeError, decode, save_thumbnail

MAX_WORKERS = 8


def default_workers() -> int:
    """Half the machine's cores (the engine's front end and this process need the rest), 1 to MAX_WORKERS."""
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class DecodedImage:
    """What a worker sends back: the RGB pixels and the thumbnail's file name, or why there are none.
    Plain bytes and strings, so that it crosses a process boundary cheaply."""

    mode: str = ""
    size: tuple[int, int] = (0, 0)
    pixels: bytes = b""
    thumbnail: str = ""
    error: str | None = None           # the image could not be decoded: that sample fails, not the run
    storage_error: str | None = None   # the thumbnail could not be written (disk full): the run stops
    seconds: float = 0.0

    def image(self) -> Image.Image:
        return Image.frombytes(self.mode, self.size, self.pixels)


def decode_and_thumbnail(data: bytes, size: tuple[int, int] | None, folder: str, name: str) -> DecodedImage:
    """Decode (and resize) one image and write its thumbnail; runs in a worker."""
    started = time.perf_counter()
    try:
        image = decode(data, size)
    except ImageDecodeError as exc:
        return DecodedImage(error=str(exc), seconds=time.perf_counter() - started)
    try:
        thumbnail = save_thumbnail(image, Path(folder), name)
    except StorageError as exc:
        return DecodedImage(storage_error=str(exc), seconds=time.perf_counter() - started)
    return DecodedImage(image.mode, image.size, image.tobytes(), thumbnail, seconds=time.perf_counter() - started)


def _ready() -> int:
    return os.getpid()


class ImageWorkers:
    """A pool of workers that decode images and write thumbnails; `kind` is "processes" or "threads"."""

    def __init__(self, executor: Executor, kind: str, n_workers: int, start_s: float):
        self.executor, self.kind, self.n_workers, self.start_s = executor, kind, n_workers, start_s

    @classmethod
    def start(cls, n_workers: int | None = None) -> ImageWorkers:
        """Spawn the workers and wait until each has started, so that none of that shows in generation time."""
        n = n_workers or default_workers()
        started = time.perf_counter()
        pool: ProcessPoolExecutor | None = None
        try:
            # spawn, not fork: this process may hold an engine's threads and a CUDA context.
            pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
            for future in [pool.submit(_ready) for _ in range(n)]:
                future.result()
        except (OSError, NotImplementedError, ImportError, BrokenProcessPool):  # no process support here
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            return cls(ThreadPoolExecutor(n, thread_name_prefix="images"), "threads", n,
                       time.perf_counter() - started)
        return cls(pool, "processes", n, time.perf_counter() - started)

    def submit(self, data: bytes, size: tuple[int, int] | None, folder: Path, name: str) -> Future[DecodedImage]:
        return self.executor.submit(decode_and_thumbnail, data, size, str(folder), name)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
