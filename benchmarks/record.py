"""What every benchmark record carries besides its figures: when, which code, which command, which machine.

A figure means little without the machine it was measured on and how busy that machine was, so
every benchmark that writes ``benchmarks/results/*.json`` starts a record before it measures and
writes its figures through ``write``:

    rec = record.start()                   # date, commit, command, machine and load, before measuring
    ...
    record.write(args.json, rec, figures)  # {"record": {... + load_after}, **figures}

``benchmarks.report`` reads ``record.date`` and ``record.command`` beside the figures.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    """The checked-out commit, with ``-dirty`` when tracked files differ from it ("unknown" outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def command(args: list[str] | None = None) -> str:
    """The command line that is running, as a person would type it (``python -m benchmarks.x ...``);
    ``args`` are its arguments (default: this process's)."""
    args = sys.argv[1:] if args is None else args
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = f"python -m {spec.name}" if spec is not None and spec.name else f"python {sys.argv[0]}"
    return " ".join([head, *args])


def machine() -> dict:
    """Cores (all, and those this process may use), CPU model, OS, torch, and the load average now."""
    from digitnet.training import usable_cores

    try:
        import torch
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a requirement
        torch_version = None
    return {"cores": os.cpu_count(), "usable_cores": usable_cores(), "cpu_model": cpu_model(),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "torch": torch_version, "load_before": list(os.getloadavg())}


def start(args: list[str] | None = None) -> dict:
    """The record's header, taken before measuring: date (UTC), commit, command, machine."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit(), "command": command(args), "machine": machine()}


def write(path: str | os.PathLike | None, header: dict, figures: dict | list) -> dict:
    """Write ``{"record": header + load_after, **figures}`` to ``path`` (nothing when None); return it."""
    out = {"record": {**header, "load_after": list(os.getloadavg())}}
    out.update(figures if isinstance(figures, dict) else {"rows": figures})
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=1) + "\n")
    return out
