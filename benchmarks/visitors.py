"""Many visitors at once on one app: some queue training runs while others draw; then 200 come and go.

The app runs in a child process (``app.build_demo`` on a training slice), so its memory is
the server's alone. Every visitor is one ``gradio_client.Client`` (one session) in its own
thread.

1. **idle**: ``--drawers`` visitors each send ``--drawings`` drawings to /predict, one after
   another (MNIST test digits rendered like the pad's drawings by ``benchmarks/drawn.py``).
2. **training**: ``--trainers`` visitors each queue a short run through /train at the same
   moment, and follow it with /status until it ends, while the drawers draw again. Reported:
   whether every run finished, each visitor's wait in the queue and whole time, drawing
   latency (median, p95) against the idle phase, errors, and the server's peak memory.
3. **sessions**: ``--sessions`` visitors come one after another; every tenth trains a tiny
   run, the others add three digits to "my digits"; each then leaves (``Client.close``,
   which ends its heartbeat, so Gradio's unload event frees its workspace). The server's
   resident memory after they have all gone is compared with before they came.

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.visitors
    python -m benchmarks.visitors --trainers 8 --drawers 24 --sessions 200 --json visitors.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks import record
from PIL import Image

from benchmarks.drawn import label_of, launch_app_process, make_drawings, sketch_value, stop_app_process
from digitnet.preprocess import pad_payload

STARTUP_TIMEOUT = 240
# A short run: one LeNet epoch on 5,000 images (a few seconds on two cores).
TRAIN_SLICE = dict(train_limit=5_000, val_size=1_000, test_limit=1_000)
TINY_SLICE_EPOCHS = 1
HEARTBEAT_SECONDS = 15  # Gradio's heartbeat: a closed session is noticed within about two of these
STATUS_POLL_SECONDS = 0.5


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS) or its peak (VmHWM) in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def draw_phase(url: str, pngs: list[tuple[int, str]], drawers: int, drawings: int, until=None) -> dict:
    """``drawers`` visitors draw ``drawings`` digits each (or until ``until()`` is true): latency and errors."""
    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    correct = [0]
    lock = threading.Lock()

    def visitor(k: int) -> None:
        client = Client(url, verbose=False)
        i = 0
        while (until is None and i < drawings) or (until is not None and not until()):
            label, png = pngs[(k * 97 + i) % len(pngs)]
            t0 = time.perf_counter()
            try:
                result = client.predict(sketch=sketch_value(png), model="lenet", api_name="/predict")
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    correct[0] += label_of(result) == label
            except Exception as exc:  # counted, never fatal
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
            i += 1
        client.close()

    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(drawers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    return {"requests": len(latencies) + len(errors), "errors": len(errors), "error_examples": errors[:3],
            "median_ms": 1000 * statistics.median(latencies) if latencies else None,
            "p95_ms": 1000 * percentile(latencies, 95) if latencies else None,
            "throughput": len(latencies) / seconds, "accuracy": correct[0] / max(len(latencies), 1)}


def train_phase(url: str, trainers: int, epochs: int) -> tuple[list[dict], threading.Event]:
    """Start ``trainers`` visitors' runs at once; returns (their records, an event set when all ended)."""
    from gradio_client import Client

    records: list[dict] = [{} for _ in range(trainers)]
    done = threading.Event()
    start = threading.Barrier(trainers)

    def visitor(k: int) -> None:
        client = Client(url, verbose=False)
        rec = records[k]
        start.wait()
        t0 = time.perf_counter()
        try:
            first = client.predict(model="lenet", epochs=epochs, api_name="/train")
            rec.update(position=first.get("position"), estimate_s=first.get("starts_in_seconds"))
            while True:
                s = client.predict(api_name="/status")
                if s["state"] == "running" and "wait_s" not in rec:
                    rec["wait_s"] = time.perf_counter() - t0
                if s["state"] not in ("queued", "running"):
                    rec.update(state=s["state"], test_acc=s["test_acc"], total_s=time.perf_counter() - t0)
                    rec.setdefault("wait_s", rec["total_s"])
                    break
                time.sleep(STATUS_POLL_SECONDS)
        except Exception as exc:
            rec.update(state="error", error=f"{type(exc).__name__}: {exc}"[:200])
        client.close()

    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(trainers)]
    for t in threads:
        t.start()

    def wait_all() -> None:
        for t in threads:
            t.join()
        done.set()

    threading.Thread(target=wait_all, daemon=True).start()
    return records, done


def sessions_phase(url: str, sessions: int, digit_pngs: list[tuple[int, str]], pid: int) -> dict:
    """``sessions`` visitors come, train a tiny run or add digits, and go; memory before and after."""
    from gradio_client import Client

    before = rss_mb(pid)
    trained = added = 0
    for k in range(sessions):
        client = Client(url, verbose=False)
        if k % 10 == 0:
            client.predict(model="mlp", epochs=TINY_SLICE_EPOCHS, api_name="/train")
            while client.predict(api_name="/status")["state"] in ("queued", "running"):
                time.sleep(STATUS_POLL_SECONDS)
            trained += 1
        else:
            for label, png in digit_pngs[k % 7: k % 7 + 3]:  # as the pad sends a drawing
                payload = pad_payload(np.asarray(Image.open(png))[..., 3])
                client.predict(payload, None, str(label), api_name="/add_digit")
            added += 1
        client.close()
    peak_during = rss_mb(pid)
    time.sleep(3 * HEARTBEAT_SECONDS)  # every closed session's unload has run by now
    after = rss_mb(pid)
    return {"sessions": sessions, "trained": trained, "added_digits": added, "rss_before_mb": round(before, 1),
            "rss_with_sessions_mb": round(peak_during, 1), "rss_after_mb": round(after, 1),
            "growth_mb": round(after - before, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trainers", type=int, default=8, help="visitors who queue a run (default: 8)")
    p.add_argument("--drawers", type=int, default=24, help="visitors who draw meanwhile (default: 24)")
    p.add_argument("--drawings", type=int, default=10, help="drawings per drawer in the idle phase (default: 10)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of each queued LeNet run (default: 1)")
    p.add_argument("--sessions", type=int, default=200, help="visitors who come and go in phase 3 (default: 200)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    header = record.start(argv)
    drawings = make_drawings(60, seed=1)
    with tempfile.TemporaryDirectory(prefix="digitnet-visitors-") as tmp:
        work = Path(tmp)
        pngs = []
        for i, d in enumerate(drawings):
            path = work / f"{i}.png"
            Image.fromarray(d.canvas).save(path)
            pngs.append((d.label, str(path)))
        server, url = launch_app_process(work, STARTUP_TIMEOUT, train_overrides=TRAIN_SLICE)
        try:
            pid = server.pid
            base_rss = rss_mb(pid)
            idle = draw_phase(url, pngs, args.drawers, args.drawings)
            records, all_ended = train_phase(url, args.trainers, args.epochs)
            during = draw_phase(url, pngs, args.drawers, 0, until=all_ended.is_set)
            all_ended.wait()
            peak = rss_mb(pid, "VmHWM")
            finished = report(records, idle, during, base_rss, peak, args.trainers)
            sessions = sessions_phase(url, args.sessions, pngs, pid) if args.sessions else None
        finally:
            stop_app_process(server)
    if sessions:
        print(f"\n{sessions['sessions']} sessions came and went ({sessions['trained']} trained, "
              f"{sessions['added_digits']} added digits): server RSS {sessions['rss_before_mb']} MB before, "
              f"{sessions['rss_with_sessions_mb']} MB right after, {sessions['rss_after_mb']} MB once they were "
              f"gone: {sessions['growth_mb']:+.1f} MB")
    record.write(args.json, header, {"runs": records, "idle": idle, "training": during, "peak_rss_mb": peak,
                                     "start_rss_mb": base_rss, "sessions": sessions})
    return 0 if finished == len(records) and not idle["errors"] and not during["errors"] else 1


def report(records: list[dict], idle: dict, during: dict, base_rss: float, peak: float, trainers: int) -> int:
    """Print the runs and the two drawing phases; return how many runs finished."""
    finished = sum(r.get("state") == "done" for r in records)
    waits = sorted(r.get("wait_s", float("nan")) for r in records)
    print(f"server memory at start: {base_rss:.0f} MB; peak: {peak:.0f} MB")
    print(f"\nruns: {finished}/{len(records)} finished; waits in the queue (s): "
          + ", ".join(f"{w:.1f}" for w in waits))
    for k, r in enumerate(records):
        print(f"  visitor {k}: position {r.get('position')}, estimated start {r.get('estimate_s')} s, waited "
              f"{r.get('wait_s', float('nan')):.1f} s, done after {r.get('total_s', float('nan')):.1f} s, "
              f"{r.get('state')}, test acc {r.get('test_acc')}" + (f", {r['error']}" if r.get("error") else ""))
    print("\n| phase | requests | errors | median | p95 | throughput | accuracy |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, ph in (("idle", idle), (f"while {trainers} runs train", during)):
        print(f"| {name} | {ph['requests']} | {ph['errors']} | {ph['median_ms']:.0f} ms | {ph['p95_ms']:.0f} ms | "
              f"{ph['throughput']:.1f}/s | {ph['accuracy']:.1%} |", flush=True)
    return finished


if __name__ == "__main__":
    raise SystemExit(main())
