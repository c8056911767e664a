"""Does drawing recognition stay quick while a training run shares the CPU?

Starts the app in a separate process (as a visitor meets it), then through ``gradio_client``
times ``/predict`` on a drawn digit and the no-op ``/status`` call in alternation, in phases
that alternate between the app idle and a full-MNIST training run going on. The client by itself costs
~75-80 ms a call (its stream reader polls every 50 ms), so the app is judged by
``/predict`` minus ``/status`` (medians, same run). Target (issue 5): that difference during
training is at most 3x the idle one.

    python benchmarks/responsive.py                      # the app's own thread budget
    python benchmarks/responsive.py --niceness 0                      # a trainer at normal priority
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.drawn import launch_app_process, stop_app_process  # noqa: E402
from digitnet.data import load_mnist  # noqa: E402

CANVAS = 800
STARTUP_TIMEOUT = 120  # seconds for the app process to answer


def drawn_digit(folder: Path, index: int = 0) -> Path:
    """MNIST test digit ``index`` as black ink on a transparent 800x800 canvas (a Sketchpad value's file)."""
    digit = load_mnist().test_images[index].numpy()
    ink = Image.fromarray(digit).resize((420, 420), Image.BICUBIC)
    alpha = Image.new("L", (CANVAS, CANVAS), 0)
    alpha.paste(ink, (190, 160))
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    canvas.putalpha(alpha)
    path = folder / f"digit{index}.png"
    canvas.save(path)
    return path


def timed(fn) -> float:
    """Milliseconds one call takes."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def measure(client, sketch: dict, rounds: int) -> dict[str, list[float]]:
    """Call /status then /predict, ``rounds`` times; the latencies in ms."""
    status, predict = [], []
    for _ in range(rounds):
        status.append(timed(lambda: client.predict(api_name="/status")))
        predict.append(timed(lambda: client.predict(sketch=sketch, model="lenet", api_name="/predict")))
    return {"status": status, "predict": predict}


def summary(samples: list[dict[str, list[float]]]) -> dict:
    """Medians over all phases of one kind; "above the floor" is the median of the per-round
    differences /predict - /status (paired, so a background load that drifts cancels out)."""
    status = [t for s in samples for t in s["status"]]
    predict = [t for s in samples for t in s["predict"]]
    paired = [p - q for s in samples for p, q in zip(s["predict"], s["status"])]
    return {"status_ms": round(statistics.median(status), 1), "predict_ms": round(statistics.median(predict), 1),
            "above_floor_ms": round(statistics.median(paired), 1),
            "predict_p90_ms": round(float(np.percentile(predict, 90)), 1), "calls": len(predict)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15, help="calls of each endpoint per phase (default: 15)")
    p.add_argument("--cycles", type=int, default=3, help="idle/training phase pairs (default: 3)")
    p.add_argument("--train-threads", default="auto",
                   help="torch threads of the training run ('auto' = the app's budget, every usable core)")
    p.add_argument("--niceness", type=int, default=None,
                   help="how much nicer the training thread runs (default: the app's, digitnet.job.TRAINER_NICENESS)")
    p.add_argument("--model", default="lenet", help="model trained during the training phases (default: lenet)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()

    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="digitnet-responsive-"))
    from digitnet.job import TRAINER_NICENESS

    niceness = TRAINER_NICENESS if args.niceness is None else args.niceness
    threads = None if args.train_threads == "auto" else int(args.train_threads)
    server, url = launch_app_process(work, STARTUP_TIMEOUT, train_threads=threads, train_niceness=niceness)
    try:
        client = Client(url, verbose=False)
        png = drawn_digit(work)
        # The composite alone, as benchmarks/drawn.py and latency.py send it: one upload per call.
        sketch = {"background": None, "layers": [], "composite": handle_file(str(png))}
        label = client.predict(sketch=sketch, model="lenet", api_name="/predict")
        print(f"drawn digit read as {label['label']}")
        measure(client, sketch, 5)  # warm-up: model load, first uploads
        idle_phases, busy_phases, progress = [], [], ""
        # Idle and training phases alternate, so a background load that comes and goes (other
        # processes on a shared machine) hits both kinds alike.
        for _ in range(args.cycles):
            idle_phases.append(measure(client, sketch, args.rounds))
            client.predict(model=args.model, epochs=30, api_name="/train")
            while True:  # wait until batches run (MNIST loaded), so the whole phase overlaps training
                s = client.predict(api_name="/status")
                if s["state"] != "running" or s["batch"] > 0:
                    break
                time.sleep(0.2)
            busy_phases.append(measure(client, sketch, args.rounds))
            s = client.predict(api_name="/status")
            if s["state"] != "running":
                raise SystemExit(f"the training run ended during the measurement: {s['message']}")
            progress = s["message"]
            client.predict(api_name="/stop")
        idle, busy = summary(idle_phases), summary(busy_phases)
        print(f"idle:      /status {idle['status_ms']} ms, /predict {idle['predict_ms']} ms "
              f"-> {idle['above_floor_ms']} ms above the floor")
        print(f"training:  /status {busy['status_ms']} ms, /predict {busy['predict_ms']} ms "
              f"-> {busy['above_floor_ms']} ms above the floor ({progress})")
        ratio = busy["above_floor_ms"] / max(idle["above_floor_ms"], 1e-9)
        print(f"ratio (training / idle, above the floor): {ratio:.2f}  (target <= 3)")
        load = os.getloadavg()[0]
        print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores")
        result = {"load_average": round(load, 1), "idle": idle, "training": busy, "ratio": round(ratio, 2), "train_threads": args.train_threads, "niceness": niceness,
                  "cpu_count": os.cpu_count(), "trainer_progress": progress, "cycles": args.cycles}
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    finally:
        stop_app_process(server, wait=10)


if __name__ == "__main__":
    main()
