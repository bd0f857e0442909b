"""NVML sampling and hardware facts: values on a GPU host, None with a note (never an error) on a CPU host."""

from __future__ import annotations

import json
import time

from harness.gpu_memory import NvmlSampler, hardware_info


def has_nvml_gpu() -> bool:
    try:
        import pynvml
    except ImportError:
        return False
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return False
    return count > 0


def test_sampler_reports_a_peak_or_says_why_not():
    with NvmlSampler(interval_s=0.01) as sampler:
        time.sleep(0.05)
    if has_nvml_gpu():
        assert sampler.peak_used_mib is not None and sampler.peak_used_mib >= sampler.baseline_used_mib > 0
        assert sampler.n_samples >= 2
    else:
        assert sampler.peak_used_mib is None
        assert sampler.note


def test_hardware_info_has_every_field():
    info = hardware_info()
    assert set(info) == {"cpu_model", "cpu_count", "ram_gib", "gpu_name", "gpu_count", "gpu_memory_mib",
                         "driver_version", "cuda_version"}
    assert info["cpu_count"] >= 1 and info["cpu_model"]
    json.dumps(info)
    if info["gpu_count"] == 0:
        assert info["gpu_name"] is None and info["driver_version"] is None and info["cuda_version"] is None
