"""Many visitors at once: N concurrent gradio_client users each send M drawings to /predict.

Each user is one thread with its own ``gradio_client.Client`` (a shared one fails under
parallel calls) and sends its drawings one after another, each as soon as the previous
answer came back, as a person drawing digits would. The drawings are MNIST **test** digits
rendered on the 800x800 Sketchpad canvas by ``benchmarks/drawn.py`` (scaled, thin and thick
strokes, random sizes and places), one distinct drawing per request.

Two phases: the app idle, then while a training run goes on (started through /train and
stopped at the end; a run already going on a --url app is used as it is). Reported per
phase: throughput, median and 95th-percentile latency (submit to answer, as the client sees
it), errors (the call raised), dropped requests (no answer within --timeout) and the
accuracy of the answers. Targets (issue 6): zero errors, zero dropped.

    python benchmarks/load.py --launch                  # starts the app in a child process
    python benchmarks/load.py --url http://127.0.0.1:7860/   # a running app (full training)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.drawn import label_of, launch_app_process, make_drawings, sketch_value, stop_app_process  # noqa: E402

STARTUP_TIMEOUT = 180  # seconds for a launched app to answer
TRAINING_WARMUP_TIMEOUT = 120  # seconds to wait for the run's first batches before measuring
# --launch trains on a slice, so the run is a few seconds per epoch and ends if the script dies;
# 30 epochs (the default DIGITNET_MAX_EPOCHS) keeps it going through the whole phase.
LAUNCH_TRAIN = dict(train_limit=10_000, val_size=1_000, test_limit=1_000)
LAUNCH_EPOCHS = 30
URL_EPOCHS = 3  # --url: the full fast recipe, as a visitor would start it


def queue_settings(url: str) -> dict:
    """The queue as the app's /config shows it, plus app.py's concurrency constants.

    Gradio 6's /config does not carry concurrency limits, so those come from app.py (what
    --launch runs; a --url app may differ).
    """
    import httpx

    import app  # noqa: PLC0415  (the UI module at the repo root)

    config = httpx.get(f"{url}config", timeout=30).json()
    return {"queue_enabled": config.get("enable_queue"), "max_file_size": config.get("max_file_size"),
            "app.PREDICT_CONCURRENCY": app.PREDICT_CONCURRENCY, "app.QUEUE_MAX_SIZE": app.QUEUE_MAX_SIZE}


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc); None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def own_cpu_seconds() -> float:
    """CPU seconds this process (the simulated users) has used so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_phase(url: str, paths: list[list[str]], labels: list[list[int]], model: str, timeout: float,
              server_pid: int | None = None) -> dict:
    """Every user sends its drawings in turn; all users at once. Returns the phase's figures.

    With ``server_pid`` (--launch) it also reports the CPU time the app and the clients used
    per request: on a shared, loaded machine that says more than the wall-clock latency.
    """
    from gradio_client import Client

    users = len(paths)
    clients = [Client(url, verbose=False) for _ in range(users)]  # one per thread
    for c in clients:  # warm-up, not timed: model load, first upload
        c.predict(sketch=sketch_value(paths[0][0]), model=model, api_name="/predict")
    latencies: list[float] = []
    correct = errors = dropped = 0
    error_kinds: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(users + 1)

    def user(i: int) -> None:
        nonlocal correct, errors, dropped
        client = clients[i]
        barrier.wait()
        for path, truth in zip(paths[i], labels[i]):
            t0 = time.perf_counter()
            job = client.submit(sketch=sketch_value(path), model=model, api_name="/predict")
            try:
                result = job.result(timeout=timeout)
            except FutureTimeout:
                job.cancel()
                with lock:
                    dropped += 1
                continue
            except Exception as exc:  # an error the app or the queue answered with
                with lock:
                    errors += 1
                    kind = f"{type(exc).__name__}: {str(exc)[:120]}"
                    error_kinds[kind] = error_kinds.get(kind, 0) + 1
                continue
            seconds = time.perf_counter() - t0
            with lock:
                latencies.append(seconds)
                correct += label_of(result) == truth

    threads = [threading.Thread(target=user, args=(i,), name=f"load-user-{i}") for i in range(users)]
    for t in threads:
        t.start()
    load_before = os.getloadavg()[0]
    server_cpu, client_cpu = cpu_seconds(server_pid), own_cpu_seconds()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    server_cpu = None if server_cpu is None else cpu_seconds(server_pid) - server_cpu
    client_cpu = own_cpu_seconds() - client_cpu
    for c in clients:
        c.close()
    sent = sum(len(p) for p in paths)
    ms = sorted(1000 * s for s in latencies)
    return {
        "requests": sent, "answered": len(latencies), "errors": errors, "dropped": dropped,
        "error_kinds": error_kinds, "seconds": round(wall, 1),
        "throughput_per_s": round(len(latencies) / wall, 2),
        "median_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 1) if ms else None,
        "max_ms": round(ms[-1], 1) if ms else None,
        "accuracy": round(correct / max(len(latencies), 1), 4),
        # The app's CPU includes a training run's during the second phase.
        "app_cpu_ms_per_request": None if server_cpu is None else round(1000 * server_cpu / sent, 1),
        "clients_cpu_ms_per_request": round(1000 * client_cpu / sent, 1),
        "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def start_training(client, model: str, epochs: int) -> tuple[bool, str]:
    """Start a run (or find one going) and wait until batches run; returns (we started it, status message)."""
    from gradio_client.exceptions import AppError

    ours = True
    try:
        client.predict(model=model, epochs=epochs, api_name="/train")
    except AppError as exc:
        if "already training" not in str(exc):
            raise
        ours = False  # someone else's run: measure under it, leave it alone
    deadline = time.monotonic() + TRAINING_WARMUP_TIMEOUT
    while time.monotonic() < deadline:  # MNIST loading is not training: wait for the first batches
        s = client.predict(api_name="/status")
        if s["state"] != "running" or s["batch"] > 0:
            break
        time.sleep(0.2)
    return ours, s["message"]


def print_phase(name: str, f: dict) -> None:
    print(f"{name:9s} {f['answered']:4d}/{f['requests']} answered in {f['seconds']:6.1f} s  "
          f"{f['throughput_per_s']:6.2f} req/s  median {f['median_ms']} ms  p95 {f['p95_ms']} ms  "
          f"max {f['max_ms']} ms  errors {f['errors']}  dropped {f['dropped']}  accuracy {100 * f['accuracy']:.1f}%  "
          f"load {f['loadavg_1min_before_after']}")
    print(f"          CPU per request: app {f['app_cpu_ms_per_request']} ms, "
          f"simulated users {f['clients_cpu_ms_per_request']} ms")
    for kind, n in f["error_kinds"].items():
        print(f"          {n} x {kind}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running app, e.g. http://127.0.0.1:7860/")
    where.add_argument("--launch", action="store_true", help="start app.build_demo() in a child process")
    p.add_argument("--users", type=int, default=16, help="concurrent users, one Client each (default: 16)")
    p.add_argument("--drawings", type=int, default=25, help="drawings each user sends per phase (default: 25)")
    p.add_argument("--model", default="lenet", help="model asked by /predict (default: lenet)")
    p.add_argument("--train-model", default="lenet", help="model trained in the second phase (default: lenet)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds without an answer before a request counts as dropped (default: 120)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawings (default: 0)")
    p.add_argument("--skip-training", action="store_true", help="measure the idle phase only")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)

    from gradio_client import Client

    per_phase = args.users * args.drawings
    phases = 1 if args.skip_training else 2
    t0 = time.perf_counter()
    drawings = make_drawings(per_phase * phases, args.seed)  # every request a different test digit
    print(f"rendered {len(drawings)} drawings in {time.perf_counter() - t0:.1f} s")

    work = Path(tempfile.mkdtemp(prefix="digitnet-load-"))
    server = None
    try:
        all_paths, all_labels = [], []
        for i, d in enumerate(drawings):
            path = work / f"{i:05d}.png"
            Image.fromarray(d.canvas).save(path)
            all_paths.append(str(path))
            all_labels.append(d.label)

        def split(phase: int) -> tuple[list[list[str]], list[list[int]]]:
            lo = phase * per_phase
            return ([all_paths[lo + u * args.drawings: lo + (u + 1) * args.drawings] for u in range(args.users)],
                    [all_labels[lo + u * args.drawings: lo + (u + 1) * args.drawings] for u in range(args.users)])

        if args.launch:
            server, url = launch_app_process(work, STARTUP_TIMEOUT, train_overrides=LAUNCH_TRAIN)
        else:
            url = args.url if args.url.endswith("/") else args.url + "/"
        settings = queue_settings(url)
        print(f"app {url}  cpus {os.cpu_count()}  load average {tuple(round(x, 2) for x in os.getloadavg())}")
        print(f"queue settings: {settings}")
        figures: dict = {"url": url, "launched": bool(args.launch), "users": args.users, "drawings": args.drawings,
                         "model": args.model, "cpu_count": os.cpu_count(), "queue": settings}

        pid = server.pid if server is not None else None
        figures["idle"] = run_phase(url, *split(0), args.model, args.timeout, pid)
        print_phase("idle", figures["idle"])

        if not args.skip_training:
            control = Client(url, verbose=False)
            epochs = LAUNCH_EPOCHS if args.launch else URL_EPOCHS
            ours, message = start_training(control, args.train_model, epochs)
            print(f"training: {message}" + ("" if ours else " (a run already going: not ours, left running)"))
            figures["training"] = run_phase(url, *split(1), args.model, args.timeout, pid)
            end = control.predict(api_name="/status")
            figures["training"]["overlapped"] = end["state"] == "running"
            figures["training"]["trainer_progress"] = end["message"]
            if ours:
                control.predict(api_name="/stop")
            print_phase("training", figures["training"])
            if not figures["training"]["overlapped"]:
                print("warning: the training run ended before the phase did")
            control.close()

        bad = sum(figures[ph]["errors"] + figures[ph]["dropped"] for ph in ("idle", "training") if ph in figures)
        print(f"target: zero errors and zero dropped -> {'met' if bad == 0 else f'MISSED ({bad})'}")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))
        return 0 if bad == 0 else 1
    finally:
        if server is not None:
            stop_app_process(server)


if __name__ == "__main__":
    raise SystemExit(main())
