"""How long recognising a drawing takes: in process, and through the app's API.

In process (medians over ``--repeats`` runs on an 800x800 Sketchpad canvas):
preprocessing alone (target < 5 ms), preprocessing + one model (< 10 ms), all three
models, a 5000x5000 image, and what /predict does with an uploaded drawing (read the PNG,
preprocess, LeNet).

Through gradio_client (``--url URL`` or ``--launch``): the ``/predict`` median against
the no-op ``/status`` median in the same run. The client alone costs ~75-80 ms per call
(its stream reader polls every 50 ms) plus the upload of the sketch, so the app is
judged by the difference (target <= 50 ms): the difference of the medians, and the
median of the per-round differences ("paired"). Then the upload alone, as gradio_client
sends it (a one-off connection per file) and over a kept-open connection (the server's
share).

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.latency --launch
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import record
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.drawn import launch_app, render, sketch_value
from digitnet.data import load_mnist
from digitnet.predict import CACHE, predict, predict_all
from digitnet.preprocess import to_mnist_array

TARGETS_MS = {"preprocess": 5.0, "preprocess+lenet": 10.0, "predict-status": 50.0}


def median_ms(fn, repeats: int, warmup: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def sample_canvases(n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """A few drawn MNIST test digits on 800x800 canvases (styles as in benchmarks/drawn.py)."""
    data = load_mnist()
    rng = np.random.default_rng(seed)
    styles = ("scaled", "thin", "thick")
    return [render(data.test_images[i].numpy(), rng, styles[i % 3])[0] for i in range(n)]


def in_process(canvases: list[np.ndarray], repeats: int) -> dict[str, float]:
    """Medians (ms) of preprocessing, preprocessing + each model, and all three models."""
    CACHE.status()
    state = {"i": 0}

    def next_canvas() -> np.ndarray:
        state["i"] = (state["i"] + 1) % len(canvases)
        return canvases[state["i"]]

    out = {"preprocess": median_ms(lambda: to_mnist_array(next_canvas()), repeats)}
    for model in ("lenet", "cnnnet", "mlp"):
        out[f"preprocess+{model}"] = median_ms(lambda: predict(next_canvas(), model), repeats)
    out["preprocess+all three"] = median_ms(lambda: predict_all(next_canvas()), repeats)
    huge = np.asarray(Image.fromarray(canvases[0]).resize((5000, 5000), Image.Resampling.NEAREST))
    out["preprocess 5000x5000 RGBA"] = median_ms(lambda: to_mnist_array(huge), max(5, repeats // 20), warmup=1)
    with tempfile.TemporaryDirectory(prefix="digitnet-latency-") as tmp:
        # What /predict does with an uploaded drawing: read the PNG, preprocess, one model.
        paths = [os.path.join(tmp, f"{i}.png") for i in range(len(canvases))]
        for c, p in zip(canvases, paths):
            Image.fromarray(c).save(p)
        sketches = [{"background": None, "layers": [], "composite": {"path": p}} for p in paths]
        files = itertools.cycle(sketches)
        out["predict(lenet) from a PNG file"] = median_ms(lambda: predict(next(files), "lenet"), repeats)
    return out


def through_app(canvases: list[np.ndarray], url: str, repeats: int) -> dict[str, float]:
    """Medians (ms) of /status and /predict through one gradio_client.Client, interleaved."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    with tempfile.TemporaryDirectory(prefix="digitnet-latency-") as tmp:
        paths = []
        for i, c in enumerate(canvases):
            p = os.path.join(tmp, f"{i}.png")
            Image.fromarray(c).save(p)
            paths.append(p)
        status_t, predict_t = [], []
        for _ in range(3):  # warm up both endpoints
            client.predict(api_name="/status")
            client.predict(sketch=sketch_value(paths[0]), model="lenet", api_name="/predict")
        for i in range(repeats):  # interleaved, so load changes hit both alike
            start = time.perf_counter()
            client.predict(api_name="/status")
            status_t.append(time.perf_counter() - start)
            start = time.perf_counter()
            client.predict(sketch=sketch_value(paths[i % len(paths)]), model="lenet", api_name="/predict")
            predict_t.append(time.perf_counter() - start)
        breakdown = where_the_difference_goes(url, paths[0], repeats)
    s, p = 1000 * statistics.median(status_t), 1000 * statistics.median(predict_t)
    paired = 1000 * statistics.median(b - a for a, b in zip(status_t, predict_t))
    return {"/status (no-op)": s, "/predict (lenet)": p, "predict-status": p - s, "predict-status, paired": paired,
            **breakdown}


def where_the_difference_goes(url: str, path: str, repeats: int) -> dict[str, float]:
    """The client's share of /predict - /status: uploading the drawing (medians, ms).

    gradio_client uploads each file with a one-off ``httpx.post`` (a new connection and TLS
    context every time) before it calls the endpoint; the same upload over a kept-open
    connection is the server's share of it. (The app's own work on an uploaded file is the
    in-process "predict from a PNG file" figure.)
    """
    import httpx

    upload_url = url.rstrip("/") + "/gradio_api/upload"

    def upload(post) -> None:
        with open(path, "rb") as f:
            post(upload_url, files={"files": (os.path.basename(path), f, "image/png")}).raise_for_status()

    with httpx.Client() as kept_open:
        server_upload = median_ms(lambda: upload(kept_open.post), repeats, warmup=1)
    return {"upload as gradio_client does it (one-off httpx.post)": median_ms(lambda: upload(httpx.post), repeats, warmup=1),
            "upload over a kept-open connection": server_upload}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=200, help="timed runs per in-process figure (default: 200)")
    p.add_argument("--api-repeats", type=int, default=40, help="timed calls per endpoint (default: 40)")
    p.add_argument("--url", default=None, help="also measure through a running app at this URL")
    p.add_argument("--launch", action="store_true", help="also launch app.build_demo() here and measure through it")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)

    header = record.start(argv)
    canvases = sample_canvases()
    figures = {"in_process_ms": in_process(canvases, args.repeats)}
    for name, ms in figures["in_process_ms"].items():
        target = f"   (target < {TARGETS_MS[name]:.0f} ms)" if name in TARGETS_MS else ""
        print(f"{name:28s} {ms:8.2f} ms{target}")
    if args.url or args.launch:
        demo, url = (launch_app() if args.launch else (None, args.url))
        try:
            figures["api_ms"] = through_app(canvases, url, args.api_repeats)
        finally:
            if demo is not None:
                demo.close()
        for name, ms in figures["api_ms"].items():
            target = f"   (target <= {TARGETS_MS[name]:.0f} ms)" if name in TARGETS_MS else ""
            print(f"{name:28s} {ms:8.1f} ms{target}")
    record.write(args.json, header, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
