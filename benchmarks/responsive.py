"""Does drawing recognition stay quick while a training run shares the CPU?

Starts the app in a separate process (as a visitor meets it), then through ``gradio_client``
times ``/predict`` on a drawn digit and the no-op ``/status`` call in alternation, first with
the app idle and then while a full-MNIST training run goes on. The client by itself costs
~75-80 ms a call (its stream reader polls every 50 ms), so the app is judged by
``/predict`` minus ``/status`` (medians, same run). Target (issue 5): that difference during
training is at most 3x the idle one.

    python benchmarks/responsive.py                      # the app's own thread budget
    python benchmarks/responsive.py --train-threads 2    # what an unbudgeted trainer does
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digitnet.data import load_mnist  # noqa: E402

CANVAS = 800
STARTUP_TIMEOUT = 120  # seconds for the app process to answer
SERVER = """
import sys, app
threads = None if sys.argv[1] == "auto" else int(sys.argv[1])
app.build_demo(train_threads=threads).launch(server_name="127.0.0.1", server_port=int(sys.argv[2]), quiet=True,
                                             **{k: v for k, v in app.LAUNCH_OPTIONS.items() if k != "share"})
"""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def measure(client, sketch: dict, rounds: int) -> dict:
    """Alternate /status and /predict ``rounds`` times; medians in ms."""
    status, predict = [], []
    for _ in range(rounds):
        status.append(timed(lambda: client.predict(api_name="/status")))
        predict.append(timed(lambda: client.predict(sketch=sketch, model="lenet", api_name="/predict")))
    s, p = statistics.median(status), statistics.median(predict)
    return {"status_ms": round(s, 1), "predict_ms": round(p, 1), "above_floor_ms": round(p - s, 1),
            "predict_p90_ms": round(float(np.percentile(predict, 90)), 1), "rounds": rounds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40, help="calls of each endpoint per phase (default: 40)")
    p.add_argument("--train-threads", default="auto",
                   help="torch threads of the training run ('auto' = the app's budget, all cores but one)")
    p.add_argument("--model", default="lenet", help="model to train during the second phase (default: lenet)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()

    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="digitnet-responsive-"))
    port = free_port()
    env = {**os.environ, "DIGITNET_CHECKPOINTS": str(work / "checkpoints"), "DIGITNET_ALLOW_TRAINING": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVER, args.train_threads, str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                client = Client(url, verbose=False)
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the app did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        png = drawn_digit(work)
        sketch = {"background": None, "layers": [handle_file(str(png))], "composite": handle_file(str(png))}
        label = client.predict(sketch=sketch, model="lenet", api_name="/predict")
        print(f"drawn digit read as {label['label']}")
        measure(client, sketch, 5)  # warm-up: model load, first uploads
        idle = measure(client, sketch, args.rounds)
        print(f"idle:      /status {idle['status_ms']} ms, /predict {idle['predict_ms']} ms "
              f"-> {idle['above_floor_ms']} ms above the floor")

        client.predict(model=args.model, epochs=3, api_name="/train")
        while True:  # wait until batches run (MNIST loaded), so the whole phase overlaps training
            s = client.predict(api_name="/status")
            if s["state"] != "running" or s["batch"] > 0:
                break
            time.sleep(0.2)
        busy = measure(client, sketch, args.rounds)
        s = client.predict(api_name="/status")
        still_running = s["state"] == "running"
        progress = s["message"]
        client.predict(api_name="/stop")
        print(f"training:  /status {busy['status_ms']} ms, /predict {busy['predict_ms']} ms "
              f"-> {busy['above_floor_ms']} ms above the floor ({progress})")
        if not still_running:
            print("warning: the run ended before the measurement did; use fewer --rounds")
        ratio = busy["above_floor_ms"] / max(idle["above_floor_ms"], 1e-9)
        print(f"ratio (training / idle, above the floor): {ratio:.2f}  (target <= 3)")
        result = {"idle": idle, "training": busy, "ratio": round(ratio, 2), "train_threads": args.train_threads,
                  "cpu_count": os.cpu_count(), "trainer_progress": progress, "overlapped": still_running}
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
