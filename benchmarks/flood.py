"""A stranger floods the app (issue 25): another visitor's /predict latency, and the server's memory.

The app (``app.build_demo``, guard and budgets as deployed) runs in this process, launched as the
tests launch it; memory figures are this process's resident memory (the callers' threads hold a few
MB). Every call is a raw queue call, as a stranger's script makes them: ``httpx`` to
``/gradio_api/queue/join`` with a ``session_hash``, the answer read from ``queue/data``.

1. **latency**: a visitor sends ``--calls`` drawings to /predict one after another (a 112x112
   drawing uploaded once), first alone, then while one stranger's session floods /predict from
   ``--threads`` threads with the largest image the API takes (2000x2000, 4 megapixels), then with
   a 6000x6000 PNG (36 megapixels: refused before it is decoded). Reported: the visitor's median
   and p95 latency against idle, and what became of the flood's joins (accepted, refused with 429).
2. **memory**: the server's resident memory before and after ``--sessions`` raw sessions (no
   heartbeat) each load 1,000 digits (3.1 MB each in memory), with the deployment's server budget
   set to ``--budget-mb``; then three weight uploads of 1.2 MB that unpack to 1 GB.

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.flood --json benchmarks/results/flood.json
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from benchmarks.drawn import free_port
from benchmarks.visitors import percentile, rss_mb
from digitnet.data import load_mnist
from digitnet.finetune import MAX_MY_DIGITS, save_my_digits
from digitnet.models import build_model

META = {"_type": "gradio.FileData"}


class Stranger:
    """Raw queue calls to one app."""

    def __init__(self, url: str) -> None:
        self.url = url
        config = httpx.get(f"{url}config", timeout=30).json()
        self.index = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}

    def upload(self, path: Path) -> dict:
        with path.open("rb") as f:
            r = httpx.post(f"{self.url}gradio_api/upload", files={"files": (path.name, f)}, timeout=120)
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": path.name, "meta": META}

    def join(self, api: str, data: list, session: str, client: httpx.Client | None = None) -> httpx.Response:
        post = (client or httpx).post
        return post(f"{self.url}gradio_api/queue/join", json={"data": data, "fn_index": self.index[api],
                                                               "session_hash": session}, timeout=600)

    def answer(self, session: str, event_id: str) -> tuple[bool, dict]:
        with httpx.stream("GET", f"{self.url}gradio_api/queue/data", params={"session_hash": session},
                          timeout=600) as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                        return msg["success"], msg["output"]
        return False, {"error": "stream ended"}

    def call(self, api: str, data: list, session: str) -> tuple[bool, dict, int]:
        r = self.join(api, data, session)
        if r.status_code != 200:
            return False, {"error": r.text}, r.status_code
        ok, out = self.answer(session, r.json()["event_id"])
        return ok, out, 200


def sketch(file_data: dict) -> dict:
    return {"background": None, "layers": [], "composite": file_data}


def visitor_latency(s: Stranger, drawing: dict, calls: int) -> dict:
    """One visitor drawing ``calls`` times, one after another: latencies and errors."""
    times, errors, session = [], 0, f"visitor-{time.monotonic_ns()}"
    for _ in range(calls):
        t0 = time.perf_counter()
        ok, out, code = s.call("predict", [sketch(drawing), "lenet"], session)
        times.append(time.perf_counter() - t0)
        errors += not (ok and out["data"][0].get("label") == "7")
    return {"calls": calls, "errors": errors, "median_ms": round(1000 * statistics.median(times), 1),
            "p95_ms": round(1000 * percentile(times, 95), 1)}


def flood(s: Stranger, image: dict, threads: int, stop: threading.Event) -> dict:
    """One session joins /predict from ``threads`` threads as fast as it can, never reading answers."""
    counts = {"accepted": 0, "refused_429": 0, "other": 0, "failed": 0}
    join_seconds: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        with httpx.Client(timeout=600) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    code = s.join("predict", [sketch(image), "lenet"], "flooder", client).status_code
                except httpx.HTTPError:
                    code = None
                with lock:
                    join_seconds.append(time.perf_counter() - t0)
                    key = "failed" if code is None else "accepted" if code == 200 else \
                        "refused_429" if code == 429 else "other"
                    counts[key] += 1
                if code == 429:
                    time.sleep(0.01)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    return {"workers": workers, "counts": counts, "join_seconds": join_seconds}


def paper(side: int, digit28: np.ndarray) -> Image.Image:
    ink = Image.fromarray(255 - digit28).resize((side // 2, side // 2), Image.BICUBIC)
    page = Image.new("L", (side, side), 255)
    page.paste(ink, (side // 4, side // 4))
    return page


def bomb_checkpoint(path: Path, extra_mb: int) -> Path:
    """A LeNet checkpoint with an ``extra`` tensor of zeros, its entries deflated (a small file)."""
    buffer = io.BytesIO()
    torch.save({"format_version": 1, "arch": "lenet", "state_dict": build_model("lenet").state_dict(),
                "mean": 0.1307, "std": 0.3081, "extra": torch.zeros(extra_mb * 2**18)}, buffer)
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20, help="the visitor's drawings per phase (default: 20)")
    p.add_argument("--threads", type=int, default=4, help="the flooding session's threads (default: 4)")
    p.add_argument("--sessions", type=int, default=60, help="raw sessions loading 1,000 digits (default: 60)")
    p.add_argument("--budget-mb", type=int, default=128, help="the server's visitor budget (default: 128)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--before", action="store_true",
                   help="the app as it was before issue 25, for comparison: no cap on a session's queued events, "
                        "images up to 40 megapixels")
    args = p.parse_args(argv)
    if args.before:
        from digitnet import preprocess
        from digitnet.ui import guard

        guard.pending_events = lambda queue, session: 0  # the cap is never reached
        preprocess.MAX_INPUT_PIXELS = 40_000_000

    mnist = load_mnist()
    seven = mnist.test_images[0].numpy()
    work = Path(tempfile.mkdtemp(prefix="digitnet-flood-"))
    files = {}
    small = np.zeros((112, 112), np.uint8)
    small[14:98, 14:98] = np.asarray(Image.fromarray(seven).resize((84, 84), Image.BICUBIC))
    rgba = Image.new("RGBA", (112, 112), (0, 0, 0, 0))
    rgba.putalpha(Image.fromarray(small))
    rgba.save(files.setdefault("drawing", work / "drawing.png"))
    paper(2000, seven).save(files.setdefault("4mp", work / "4mp.png"))
    paper(6000, seven).save(files.setdefault("36mp", work / "36mp.png"))
    digits = save_my_digits([(mnist.test_images[i].numpy() / 255.0, int(mnist.test_labels[i]))
                             for i in range(MAX_MY_DIGITS)], work / "digits.npz")
    bomb = bomb_checkpoint(work / "bomb.pt", 1024)

    load_before = os.getloadavg()
    import app  # noqa: PLC0415  (the UI module at the repo root)

    os.environ["DIGITNET_CHECKPOINTS"] = str(work / "checkpoints")
    demo = app.build_demo(visitors_budget_mb=args.budget_mb)
    port = free_port()
    launch = {k: v for k, v in app.LAUNCH_OPTIONS.items() if k != "share"}
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch)
    url, pid = f"http://127.0.0.1:{port}/", os.getpid()
    try:
        s = Stranger(url)
        uploaded = {k: s.upload(v) for k, v in files.items()}
        s.call("predict", [sketch(uploaded["drawing"]), "lenet"], "warm-up")
        latency = {"idle": visitor_latency(s, uploaded["drawing"], args.calls)}
        for name in ("4mp", "36mp"):
            stop = threading.Event()
            state = flood(s, uploaded[name], args.threads, stop)
            reader = threading.Thread(target=s.answer, args=("flooder", "none"), daemon=True)
            reader.start()  # the flooder reads its answers, so its accepted events finish and it joins again
            time.sleep(2)
            latency[f"flood {name}"] = {**visitor_latency(s, uploaded["drawing"], args.calls),
                                        "flood_joins": dict(state["counts"])}
            joins = list(state["join_seconds"])
            if joins:
                latency[f"flood {name}"]["flood_join_median_ms"] = round(1000 * statistics.median(joins), 1)
            stop.set()
            for w in state["workers"]:
                w.join(30)
            time.sleep(3)
        for k, v in latency.items():
            print(f"{k}: {v}", flush=True)

        memory = {"start_mb": round(rss_mb(pid), 1)}
        digits_file = s.upload(digits)
        ok_loads = 0
        for n in range(args.sessions):
            ok, _, _ = s.call("load_digits", [digits_file], f"digits-{n}")
            ok_loads += ok
            if n % 20 == 19:
                time.sleep(1.1)  # the server adds up its visitors' memory at most once a second
        s.call("status", [], "one-more")
        visitors = demo.ctx.visitors
        memory.update(after_sessions_mb=round(rss_mb(pid), 1), sessions_loaded=ok_loads,
                      workspaces_left=len(visitors), evicted=visitors.evicted,
                      workspaces_hold_mb=round(visitors.memory_bytes() / 2**20, 1),
                      digits_held_without_budget_mb=round(args.sessions * MAX_MY_DIGITS * 28 * 28 * 4 / 2**20, 1))
        bomb_file = s.upload(bomb)
        refusals = [s.call("upload_weights", [bomb_file], f"bomber-{n}")[1].get("error") for n in range(3)]
        memory.update(after_bombs_mb=round(rss_mb(pid), 1), peak_mb=round(rss_mb(pid, "VmHWM"), 1),
                      bomb_file_mb=round(bomb.stat().st_size / 2**20, 2), bomb_unpacked_mb=1024,
                      bomb_answer=refusals[0])
        print(memory, flush=True)
    finally:
        demo.close()

    record = {
        "benchmark": "flood", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "command": "python -m benchmarks.flood " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()], "args": vars(args), "latency": latency, "memory": memory,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
