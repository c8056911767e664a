"""What the machine gives a run: the cores it may use, glibc's malloc tuned for training steps, the device.

``loop.TrainingRun.run`` calls ``usable_cores`` and ``keep_freed_memory`` once per run; the
scheduler sizes its worker with ``usable_cores``; ``resolve_device`` is shared by the trainer and
``calibrate`` (it lives here so that neither imports the other for it).
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
from pathlib import Path

import torch

# Where a container's CPU quota lives: cgroup v2 ("QUOTA PERIOD" or "max PERIOD" in one file),
# cgroup v1 (quota and period in two files, quota -1 for none).
CGROUP_CPU_QUOTA_FILES = (
    ("/sys/fs/cgroup/cpu.max", None),
    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)


def usable_cores() -> int:
    """CPU cores this process may really use: its CPU affinity, capped by a cgroup CPU quota.

    In a container (a Hugging Face Space, CI) ``os.cpu_count()`` and torch's default thread
    count follow the host's cores, often many more than the two the container may use; that
    many OpenMP threads on two cores wait on each other and train several times slower.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    for quota_file, period_file in CGROUP_CPU_QUOTA_FILES:
        try:
            parts = Path(quota_file).read_text().split()
            quota, period = (parts[0], parts[1]) if period_file is None else (parts[0], Path(period_file).read_text())
            if quota not in ("max", "-1"):
                cores = min(cores, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError, IndexError):
            continue
    return max(1, cores)


# glibc's malloc hands blocks above 128 kB to mmap and returns them to the system when freed, so a
# training step's activations (LeNet at batch 256: ~1-10 MB each) arrive as fresh pages that fault in,
# page by page, on every step. Keeping blocks up to 32 MB in the heap, and freed memory up to 64 MB
# before it is given back, makes the step reuse its pages: the CNNs' steps get faster, for a little
# more peak memory (figures: benchmarks/RESULTS-speed.md).
MALLOC_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit for this setting on 64-bit
MALLOC_TRIM_THRESHOLD = 64 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_malloc_tuned = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc (once per process) so training steps reuse their memory; False where it is not glibc."""
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        return False
    _malloc_tuned = ok
    return ok


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when available and asked for (or 'auto'), else CPU."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")

