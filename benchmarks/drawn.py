"""Accuracy on digits drawn the way a person draws them on the Sketchpad.

MNIST digits the models never trained on are put on an 800x800 transparent RGBA
canvas, black ink in the alpha channel as Gradio's Sketchpad sends it, at random
sizes (20% to 75% of the canvas) and random positions, in three styles:

- ``scaled``: the MNIST digit simply enlarged: strokes as thick, relative to the digit,
  as MNIST's (a thick marker);
- ``thin``:  skeletonised and re-drawn with a fixed round brush of radius 2-4 px (what a
  sketchpad produces when someone draws a large digit with a small brush);
- ``thick``: the same with a brush of radius 6-12 px.

Two versions, by where the digits come from (``--split``):

- ``val``: the 5,000 validation images (``digitnet.data.train_val_split``, held out of every
  training run). This is the one that CHOOSES: recipes, finishes, which file ships, thresholds;
- ``test``: MNIST's 10,000 test images. It only REPORTS (the README's figure, the Compare tab's
  ``benchmarks/results/drawn.json``), after every choice was made on ``val``.

Every drawing is deterministic given ``--seed`` and ``--split``. Reports the accuracy of each model

- in process, through ``digitnet.predict.predict_all`` (the real preprocessing);
- the same, but each canvas first reduced to the drawing pad's payload (``digitnet.ui.pad``:
  the 800x800 ink area-averaged to a 112x112 alpha PNG, as the browser renders it), so the
  pad is held to the same accuracy as the Sketchpad;
- with the canvas simply resized to 28x28 (the naive baseline: ink = alpha, area-averaged);
- with the stroke-width normalisation switched off (to show what it buys);
- through a running app's ``/predict`` with gradio_client (``--url URL`` or ``--launch``).

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.drawn -n 1000 --split val   # for choosing
    python -m benchmarks.drawn -n 1000 --json benchmarks/results/drawn.json       # test: reporting only
    python -m benchmarks.drawn -n 1000 --launch --workers 4

Figures: benchmarks/RESULTS-draw.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent

from benchmarks import record
from digitnet import preprocess
from digitnet.data import load_mnist, normalize, train_val_split
from digitnet.models import MODELS
from digitnet.predict import CACHE, predict_all

CANVAS = 800  # Gradio's default Sketchpad canvas_size
MIN_FRACTION, MAX_FRACTION = 0.20, 0.75  # digit size (longer side) relative to the canvas
STYLES = ("scaled", "thin", "thick")
THIN_RADII = (2, 3, 4)  # px on the 800 px canvas: a small round brush
THICK_RADII = (6, 8, 10, 12)
SKELETON_SIDE = 200  # skeletonise at most at this size (fast), then draw at full size
SUPERSAMPLE = 2  # draw the brush at 2x and box-reduce: anti-aliased edges like a canvas
# Accuracy required on 1,000 drawings: near each model's MNIST test accuracy, so a drawing reads as well as a
# scan (the MLP, weaker on MNIST too, gets a lower bar).
TARGETS = {"lenet": 0.985, "cnnnet": 0.985, "mlp": 0.96}


@dataclass
class Drawing:
    """One rendered canvas: (800, 800, 4) uint8 RGBA, black ink in alpha."""

    canvas: np.ndarray
    label: int
    index: int  # index in its split (MNIST test, or the validation images)
    style: str
    fraction: float  # digit's longer side / canvas side
    radius: int  # brush radius in px (0 for ``scaled``)


def _crop(img: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(img)
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _brush_alpha(binary: np.ndarray, height: int, width: int, radius: int) -> tuple[np.ndarray, int]:
    """Skeleton of ``binary`` re-drawn with a round brush at (height, width); returns (alpha, margin)."""
    from skimage.morphology import skeletonize  # dev dependency (requirements-dev.txt)

    skeleton = skeletonize(binary)
    ys, xs = np.nonzero(skeleton)
    sy = height / binary.shape[0]
    sx = width / binary.shape[1]
    margin = radius + 2
    ss = SUPERSAMPLE
    im = Image.new("L", ((width + 2 * margin) * ss, (height + 2 * margin) * ss), 0)
    draw = ImageDraw.Draw(im)
    r = radius * ss

    def centre(y: int, x: int) -> tuple[float, float]:
        return ((x + 0.5) * sx + margin) * ss, ((y + 0.5) * sy + margin) * ss

    on = set(zip(ys.tolist(), xs.tolist()))
    for y, x in on:
        cx, cy = centre(y, x)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        # Join 8-connected skeleton neighbours with a stroke of the brush's width.
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            if (y + dy, x + dx) in on:
                draw.line((cx, cy, *centre(y + dy, x + dx)), fill=255, width=2 * r + 1)
    alpha = np.asarray(im.reduce(ss), dtype=np.float32) / 255.0
    return alpha, margin


def render(img: np.ndarray, rng: np.random.Generator, style: str, canvas: int = CANVAS) -> tuple[np.ndarray, float, int]:
    """MNIST digit (28x28 uint8) -> (canvas RGBA uint8, size fraction, brush radius)."""
    digit = _crop(img).astype(np.float32) / 255.0
    fraction = float(rng.uniform(MIN_FRACTION, MAX_FRACTION))
    scale = fraction * canvas / max(digit.shape)
    height, width = max(1, round(digit.shape[0] * scale)), max(1, round(digit.shape[1] * scale))
    if style == "scaled":
        radius, margin = 0, 0
        alpha = np.asarray(Image.fromarray(digit).resize((width, height), Image.Resampling.BILINEAR))
    else:
        radius = int(rng.choice(THIN_RADII if style == "thin" else THICK_RADII))
        # Skeletonise a moderately sized copy: the skeleton's shape does not need 600 px.
        k = min(1.0, SKELETON_SIDE / max(height, width))
        sh, sw = max(1, round(height * k)), max(1, round(width * k))
        binary = np.asarray(Image.fromarray(digit).resize((sw, sh), Image.Resampling.BILINEAR)) > 0.5
        alpha, margin = _brush_alpha(binary, height, width, radius)
    ah, aw = alpha.shape
    top = int(rng.integers(0, canvas - ah + 1)) if ah <= canvas else (canvas - ah) // 2
    left = int(rng.integers(0, canvas - aw + 1)) if aw <= canvas else (canvas - aw) // 2
    out = np.zeros((canvas, canvas, 4), np.uint8)  # transparent, RGB 0 as the canvas exports it
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + ah, canvas), min(left + aw, canvas)
    out[y0:y1, x0:x1, 3] = np.clip(alpha[y0 - top : y1 - top, x0 - left : x1 - left] * 255 + 0.5, 0, 255).astype(np.uint8)
    return out, fraction, radius


SPLITS = ("val", "test")  # val chooses, test reports


def split_digits(split: str, data_root: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of ``split``: "val" = the validation images every run holds out, "test" = MNIST test."""
    data = load_mnist(data_root)
    if split == "test":
        return data.test_images, data.test_labels
    if split == "val":
        val = train_val_split(data)[1]
        return val.images, val.labels
    raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")


def make_drawings(n: int, seed: int = 0, data_root: str | None = None, split: str = "test") -> list[Drawing]:
    """``n`` deterministic drawings of ``split``'s digits (validation or test), styles in turn."""
    images, labels = split_digits(split, data_root)
    rng = np.random.default_rng(seed)
    indices = rng.permutation(len(labels))[:n]
    drawings = []
    for i, idx in enumerate(indices.tolist()):
        style = STYLES[i % len(STYLES)]
        canvas, fraction, radius = render(images[idx].numpy(), rng, style)
        drawings.append(Drawing(canvas, int(labels[idx]), idx, style, fraction, radius))
    return drawings


def naive_input(canvas: np.ndarray) -> np.ndarray:
    """The baseline: the canvas's ink (alpha) simply resized to 28x28, area-averaged."""
    alpha = Image.fromarray(np.ascontiguousarray(canvas[..., 3]))
    return np.asarray(alpha.resize((28, 28), Image.Resampling.BOX), dtype=np.float32) / 255.0


def batch_accuracy(seen: list[np.ndarray | None], labels: list[int]) -> dict[str, float]:
    """Accuracy of every model on already-made 28x28 inputs (a blank one counts as wrong)."""
    y = torch.tensor(labels)
    blank = torch.tensor([s is None for s in seen])
    x = torch.from_numpy(np.stack([s if s is not None else np.zeros((28, 28), np.float32) for s in seen]))
    out = {}
    for name in available_models():
        model, ckpt = CACHE.get(name)
        with torch.inference_mode():
            pred = model(normalize(x * 255.0, ckpt["mean"], ckpt["std"])).argmax(1)
        out[name] = float(((pred == y) & ~blank).float().mean())
    return out


def available_models() -> list[str]:
    """Models whose checkpoint loads (the others are reported as n/a)."""
    return [m for m, s in CACHE.status().items() if s.startswith("ok")]


def pad_input(canvas: np.ndarray) -> str:
    """What the drawing pad would send for this canvas: its ink (alpha) as the pad's small PNG payload."""
    return preprocess.pad_payload(canvas[..., 3])


def in_process(drawings: list[Drawing], to_input=None,
               flagged_is_miss: bool = True) -> tuple[dict[str, float], dict[str, dict[str, float]], float]:
    """Accuracy per model through digitnet.predict.predict_all (a drawing flagged "not a digit" counts as
    misread, unless ``flagged_is_miss`` is False: the models' own reading); also per style; and seconds.

    ``to_input`` turns a canvas into what is sent (default: the canvas itself, as the Sketchpad sends it).
    """
    models = available_models()
    correct = {m: 0 for m in models}
    by_style = {s: {m: 0 for m in models} for s in STYLES}
    count = {s: 0 for s in STYLES}
    start = time.perf_counter()
    for d in drawings:
        result = predict_all(d.canvas if to_input is None else to_input(d.canvas)) or {}
        count[d.style] += 1
        for m in models:
            p = result.get(m)
            # A digit flagged "not a digit" (digitnet.detector) is misread, as far as the visitor can tell.
            ok = p is not None and not isinstance(p, str) and p.digit == d.label and not (flagged_is_miss and p.not_digit)
            correct[m] += ok
            by_style[d.style][m] += ok
    seconds = time.perf_counter() - start
    n = len(drawings)
    return (
        {m: correct[m] / n for m in models},
        {s: {m: by_style[s][m] / max(count[s], 1) for m in models} for s in STYLES if count[s]},
        seconds,
    )


def without_stroke_normalisation(drawings: list[Drawing]) -> dict[str, float]:
    """Ablation: the same preprocessing with the stroke thickening switched off."""
    saved = preprocess.STROKE_THIN
    preprocess.STROKE_THIN = 0.0  # no stroke is ever "thin"
    try:
        seen = [preprocess.to_mnist_array(d.canvas) for d in drawings]
    finally:
        preprocess.STROKE_THIN = saved
    return batch_accuracy(seen, [d.label for d in drawings])


# ----------------------------------------------------------------------------- the app


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A child process running the app as a visitor meets it: app.build_demo(**JSON argv[1]) on port argv[2].
APP_PROCESS = """
import json, sys, app
app.build_demo(**json.loads(sys.argv[1])).launch(server_name="127.0.0.1", server_port=int(sys.argv[2]), quiet=True,
                                                 **{k: v for k, v in app.LAUNCH_OPTIONS.items() if k != "share"})
"""


def launch_app_process(work: Path, timeout: float, **build_kwargs) -> tuple[subprocess.Popen, str]:
    """Start ``app.build_demo(**build_kwargs)`` in a child process, training into ``work/checkpoints``;
    wait until it answers; return (process, url). SystemExit with its stderr if it does not start."""
    from gradio_client import Client

    port = free_port()
    # Its own Gradio cache: Gradio names cached outputs by their content (the shipped conv1 filters are
    # the same picture in every app), and an app that shuts down deletes every file it made, so another
    # app process on this machine (a test run) deleted our Explain images under us: 403 on fetching them.
    env = {**os.environ, "DIGITNET_CHECKPOINTS": str(work / "checkpoints"), "DIGITNET_ALLOW_TRAINING": "1",
           "GRADIO_TEMP_DIR": str(work / "gradio-cache")}
    server = subprocess.Popen([sys.executable, "-c", APP_PROCESS, json.dumps(build_kwargs), str(port)], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while True:
        try:
            Client(url, verbose=False)
            return server, url
        except Exception:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"the app did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)


def stop_app_process(server: subprocess.Popen, wait: float = 15) -> None:
    """Terminate a process from ``launch_app_process``; kill it if it does not end within ``wait`` s."""
    server.terminate()
    try:
        server.wait(wait)
    except subprocess.TimeoutExpired:
        server.kill()


def launch_app():
    """Import app.build_demo() and launch it on a free local port; returns (demo, url)."""
    import app  # noqa: PLC0415  (the UI module at the repo root)

    demo = app.build_demo()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def sketch_value(png_path: str) -> dict:
    """The Sketchpad value gradio_client sends: the composite as an uploaded file."""
    from gradio_client import handle_file

    return {"background": None, "layers": [], "composite": handle_file(png_path)}


def label_of(result) -> int | None:
    """The top class of a gr.Label value as gradio_client returns it."""
    if isinstance(result, dict) and result.get("label") is not None:
        try:
            return int(result["label"])
        except (TypeError, ValueError):
            return None
    return None


def through_app(drawings: list[Drawing], url: str, workers: int = 4, models=tuple(MODELS)) -> tuple[dict[str, float], float]:
    """Accuracy per model through the app's /predict (one gradio_client.Client per thread)."""
    from gradio_client import Client

    local = threading.local()

    def client() -> Client:
        if getattr(local, "client", None) is None:
            local.client = Client(url, verbose=False)
        return local.client

    with tempfile.TemporaryDirectory(prefix="digitnet-drawn-") as tmp:
        paths = []
        for i, d in enumerate(drawings):
            p = os.path.join(tmp, f"{i:05d}.png")
            Image.fromarray(d.canvas).save(p)
            paths.append(p)
        jobs = [(i, m) for i in range(len(drawings)) for m in models]

        def one(job):
            i, m = job
            result = client().predict(sketch=sketch_value(paths[i]), model=m, api_name="/predict")
            return m, label_of(result) == drawings[i].label

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, jobs))
        seconds = time.perf_counter() - start
    correct = {m: 0 for m in models}
    for m, ok in results:
        correct[m] += ok
    return {m: correct[m] / len(drawings) for m in models}, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=1000, help="number of drawings (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawings (default: 0)")
    p.add_argument("--split", choices=SPLITS, default="test",
                   help="whose digits: val (validation images: for choosing) or test (reporting only) (default: test)")
    p.add_argument("--data", default=None, help="MNIST root (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--url", default=None, help="also measure through a running app at this URL")
    p.add_argument("--launch", action="store_true", help="also launch app.build_demo() here and measure through it")
    p.add_argument("--workers", type=int, default=4, help="parallel gradio clients (default: 4)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    p.add_argument("--save-examples", default=None, help="save the first 12 drawings and what the model saw as a PNG")
    args = p.parse_args(argv)

    rec = record.start(argv)
    torch.set_num_threads(1)  # single-image inference; see digitnet/predict.py
    t0 = time.perf_counter()
    drawings = make_drawings(args.n, args.seed, args.data, args.split)
    print(f"rendered {len(drawings)} drawings of {args.split} digits in {time.perf_counter() - t0:.1f}s "
          f"(seed {args.seed}, styles {', '.join(STYLES)} in turn)")
    print("checkpoints:", CACHE.status())

    figures: dict = {"n": len(drawings), "seed": args.seed, "split": args.split,
                     "checkpoints": checkpoint_figures()}
    acc, by_style, seconds = in_process(drawings)
    figures["in_process"] = acc
    figures["by_style"] = by_style
    figures["naive_resize"] = batch_accuracy([naive_input(d.canvas) for d in drawings], [d.label for d in drawings])
    figures["no_stroke_normalisation"] = without_stroke_normalisation(drawings)
    pad_acc, pad_by_style, pad_seconds = in_process(drawings, pad_input)
    figures["pad_payload"] = pad_acc
    figures["pad_payload_by_style"] = pad_by_style
    rows = [("preprocessed (digitnet.predict)", acc),
            (f"pad payload ({preprocess.PAD_SIDE}x{preprocess.PAD_SIDE} PNG)", pad_acc),
            ("naive: canvas resized to 28x28", figures["naive_resize"]),
            ("preprocessed, no stroke thickening", figures["no_stroke_normalisation"])]
    rows += [(f"  style {s}", a) for s, a in by_style.items()]
    rows += [(f"  pad payload, style {s}", a) for s, a in pad_by_style.items()]
    print(f"in process: {seconds / len(drawings) * 1000:.1f} ms per drawing for all three models; "
          f"through the pad payload {pad_seconds / len(drawings) * 1000:.1f} ms (encoding included)")

    if args.url or args.launch:
        demo = None
        url = args.url
        if args.launch:
            demo, url = launch_app()
        try:
            app_acc, app_seconds = through_app(drawings, url, args.workers, available_models())
        finally:
            if demo is not None:
                demo.close()
        figures["through_app"] = app_acc
        rows.append((f"through {url} /predict", app_acc))
        print(f"through the app: {app_seconds:.1f}s for {len(drawings) * len(app_acc)} calls, {args.workers} clients")

    header = f"{'':38s}" + "".join(f"{m:>9s}" for m in MODELS)
    print(header)
    for title, a in rows:
        print(f"{title:38s}" + "".join(f"{100 * a[m]:8.1f}%" if m in a else f"{'n/a':>9s}" for m in MODELS))
    print(f"{'target':38s}" + "".join(f"{100 * TARGETS[m]:8.1f}%" for m in MODELS))

    if args.save_examples:
        save_examples(drawings[:12], args.save_examples)
    record.write(args.json, rec, figures)
    return 0


def checkpoint_figures() -> dict[str, dict]:
    """Which weights were measured: each shipped file's validation and test accuracy from its metadata."""
    out = {}
    for name in available_models():
        metrics = CACHE.get(name)[1].get("metrics", {})
        out[name] = {k: metrics.get(k) for k in ("val_acc", "test_acc")}
    return out


def save_examples(drawings: list[Drawing], path: str) -> None:
    """A sheet: each drawing (shrunk) above the 28x28 the model saw."""
    tile = 112
    sheet = Image.new("L", (tile * len(drawings), tile * 2), 255)
    for i, d in enumerate(drawings):
        ink = 255 - d.canvas[..., 3]
        sheet.paste(Image.fromarray(ink).resize((tile, tile), Image.Resampling.BOX), (i * tile, 0))
        seen = preprocess.to_mnist_array(d.canvas)
        if seen is not None:
            sheet.paste(Image.fromarray((seen * 255).astype(np.uint8)).resize((tile, tile), Image.Resampling.NEAREST), (i * tile, tile))
    sheet.save(path)


if __name__ == "__main__":
    raise SystemExit(main())
