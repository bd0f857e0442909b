"""GPU memory as the driver sees it, and the hardware facts a run manifest records.

torch's own peak counters miss memory that other libraries (vLLM's KV cache pool, NCCL, cuBLAS
workspaces) allocate, so the runner also samples NVML's "used" figure in a background thread:

    with NvmlSampler() as sampler:
        backend.generate(requests, params)
    sampler.peak_used_mib      # 20512.0, or None with sampler.note = "NVML unavailable: ..." on a CPU host

    hardware_info() == {"cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "cpu_count": 16, "ram_gib": 125.9,
                        "gpu_name": "NVIDIA H100 80GB HBM3", "gpu_count": 1, "gpu_memory_mib": 81079.0,
                        "driver_version": "570.86.15", "cuda_version": "13.0"}

NVML counts every process on the device, so `baseline_used_mib` (used memory when sampling started)
is kept for subtracting what was there before.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
from typing import Any, Self


def _visible_nvml_handles(pynvml) -> list[Any]:
    """NVML handles of the devices this process may use, honouring CUDA_VISIBLE_DEVICES."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    handles = []
    for entry in filter(None, (part.strip() for part in visible.split(","))):
        if entry.isdigit():
            handles.append(pynvml.nvmlDeviceGetHandleByIndex(int(entry)))
        else:  # a UUID (GPU-... or MIG-...)
            handles.append(pynvml.nvmlDeviceGetHandleByUUID(entry))
    return handles


class NvmlSampler:
    """Samples the visible devices' used memory every `interval_s` while the `with` block runs."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.peak_used_mib: float | None = None  # peak of the summed used memory of the visible devices
        self.baseline_used_mib: float | None = None
        self.n_samples = 0
        self.note: str | None = None
        self._handles: list[Any] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pynvml: Any = None

    def __enter__(self) -> Self:
        try:
            import pynvml
        except ImportError:
            self.note = "NVML unavailable: the nvidia-ml-py package is not installed"
            return self
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:  # no driver or no GPU: on a CPU host that is not an error
            self.note = f"NVML unavailable: {exc}"
            return self
        self._pynvml = pynvml
        try:
            self._handles = _visible_nvml_handles(pynvml)
            self.baseline_used_mib = self.peak_used_mib = self._used_mib() if self._handles else None
        except pynvml.NVMLError as exc:
            self.note, self._handles = f"NVML cannot read the visible devices: {exc}", []
        if not self._handles:
            self.note = self.note or "no GPU visible to NVML"
            return self
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()
        return self

    def _used_mib(self) -> float:
        used = sum(self._pynvml.nvmlDeviceGetMemoryInfo(handle).used for handle in self._handles)
        self.n_samples += 1
        return used / 2**20

    def _sample(self) -> bool:
        try:
            self.peak_used_mib = max(self.peak_used_mib or 0.0, self._used_mib())
        except self._pynvml.NVMLError as exc:  # a device lost mid-run: keep what was seen
            self.note = f"NVML sampling stopped: {exc}"
            return False
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s) and self._sample():
            pass

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()  # the block's last moment
        if self._pynvml is not None:
            with contextlib.suppress(self._pynvml.NVMLError):
                self._pynvml.nvmlShutdown()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _driver_version() -> str | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None
    return version.decode() if isinstance(version, bytes) else version


def hardware_info() -> dict[str, Any]:
    """CPU, memory and GPU facts; the GPU fields are None on a host without a CUDA device."""
    info: dict[str, Any] = {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "ram_gib": _ram_gib(),
                            "gpu_name": None, "gpu_count": 0, "gpu_memory_mib": None,
                            "driver_version": None, "cuda_version": None}
    try:
        import torch
    except ImportError:
        return info
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu_name=properties.name, gpu_count=torch.cuda.device_count(),
                    gpu_memory_mib=round(properties.total_memory / 2**20, 1),
                    driver_version=_driver_version(), cuda_version=torch.version.cuda)
    return info
