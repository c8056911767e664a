"""Does "teach it your handwriting" work? Fine-tune on 20 digits of a synthetic personal style.

A "personal style" is MNIST *test* digits with one consistent distortion the shipped
models handle poorly, brought through the app's own preprocessing
(``digitnet.preprocess.to_mnist_array``, as a drawing would be):

- ``thick``: strokes about 4x MNIST's width (a big brush on a small digit);
- ``tilted``: every digit rotated 45 degrees counter-clockwise (a strong slant).

For each model: 20 digits of the style (two of each class) are "my digits"; 100 other
digits of the same style (ten of each class) measure the style accuracy before and after
``FineTuner`` (default config), and the full MNIST test set measures forgetting (target:
a drop of at most 0.3 points). The 20 + 100 digits are drawn ``--draws`` times (default 3,
disjoint within a draw); a model and style pass when the mean rise is at least 5 points
(a 100-digit measurement moves by a few points from one draw to the next) and no draw
drops MNIST by more than 0.3 points. The MNIST test set contains the 120 originals of the
style digits; distorted as they are, that overlap is immaterial (1.2% of the set).

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.finetune [--styles thick,tilted] [--models mlp,lenet]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks import record
import torch
from PIL import Image, ImageFilter


from digitnet import data as mdata
from digitnet.checkpoint import SHIPPED_DIR, load_model
from digitnet.finetune import FineTuneConfig, FineTuner, accuracy_on
from digitnet.models import MODELS
from digitnet.preprocess import to_mnist_array
from digitnet.training import evaluate

UPSCALE = 4  # distortions are drawn at 112x112 so thick strokes and rotations stay smooth
THICK_PASSES = 4  # 5x5 max filters at 112 px: each widens a stroke by 4 px there, 1 px at 28
TILT_DEGREES = 45.0
STYLES = ("thick", "tilted")
N_MINE = 20  # "my digits": two of each class
N_EVAL = 100  # other digits of the same style: ten of each class
MAX_DROP_POINTS = 0.3  # points of MNIST test accuracy a fine-tune may cost: learning my digits must not unlearn MNIST
MIN_GAIN_POINTS = 5.0  # what we call a clear rise: 5 of the 100 style digits, averaged over the draws


def _big(image28: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(image28, np.uint8)).resize((28 * UPSCALE, 28 * UPSCALE), Image.BICUBIC)


def stylize(image28: np.ndarray, style: str) -> np.ndarray:
    """A uint8 MNIST digit -> the same digit in ``style``, preprocessed like a drawing: (28, 28) float32."""
    im = _big(image28)
    if style == "thick":
        for _ in range(THICK_PASSES):
            im = im.filter(ImageFilter.MaxFilter(5))
    elif style == "tilted":
        im = im.rotate(TILT_DEGREES, Image.BILINEAR, expand=True)
    else:
        raise ValueError(f"unknown style {style!r}: choose one of {', '.join(STYLES)}")
    return to_mnist_array(np.asarray(im))


def style_sets(dataset: mdata.MNISTTensors, style: str, n_mine: int = N_MINE, n_eval: int = N_EVAL,
               seed: int = 1) -> tuple[list[tuple[np.ndarray, int]], torch.Tensor, torch.Tensor]:
    """(my digits: n_mine (image, label) pairs, eval images (N, 1, 28, 28), eval labels) from disjoint test digits."""
    labels = dataset.test_labels.numpy()
    order = np.random.default_rng(seed).permutation(len(labels))
    per_mine, per_eval = n_mine // 10, n_eval // 10
    mine_idx, eval_idx = [], []
    for digit in range(10):
        of_digit = order[labels[order] == digit]
        mine_idx += list(of_digit[:per_mine])
        eval_idx += list(of_digit[per_mine : per_mine + per_eval])
    images = dataset.test_images.numpy()
    mine = [(stylize(images[i], style), int(labels[i])) for i in mine_idx]
    eval_x = torch.from_numpy(np.stack([stylize(images[i], style) for i in eval_idx]))[:, None]
    return mine, eval_x, torch.from_numpy(labels[eval_idx])


def measure(name: str, style: str, dataset: mdata.MNISTTensors, config: FineTuneConfig,
            source: Path, test_limit: int | None = None, draw: int = 1) -> dict:
    """Style and MNIST test accuracy of one model before and after fine-tuning on the style."""
    mine, eval_x, eval_y = style_sets(dataset, style, seed=draw)
    base, ckpt = load_model(source)
    mean, std = ckpt["mean"], ckpt["std"]
    test = mdata.test_split(dataset, test_limit)
    _, mnist_before, _ = evaluate(base, test, torch.device("cpu"), mean=mean, std=std)
    style_before = accuracy_on(base, eval_x, eval_y, mean, std)
    config.test_limit = test_limit
    tuner = FineTuner(config, mine, save=False, source=source)
    result = tuner.run()
    style_after = accuracy_on(tuner.model.cpu(), eval_x, eval_y, mean, std)
    return {
        "model": name, "style": style, "draw": draw, "my_digits": len(mine), "eval_digits": len(eval_y),
        "style_before": style_before, "style_after": style_after,
        "mnist_before": mnist_before, "mnist_after": result.test_acc,
        "mnist_drop_points": 100 * (mnist_before - result.test_acc),
        "seconds": result.train_seconds, "test_images": len(test),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", default=",".join(STYLES), help=f"comma-separated styles (default: {','.join(STYLES)})")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated models (default: all three)")
    p.add_argument("--checkpoints", default=str(SHIPPED_DIR), help="folder of the starting checkpoints (default: the shipped ones)")
    p.add_argument("--data", default=None, help="MNIST root (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--test-limit", type=int, default=None, help="MNIST test images to evaluate on (default: all 10,000)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: 0 = every usable core, as the app)")
    p.add_argument("--draws", type=int, default=3,
                   help="independent draws of my 20 / the other 100 digits per style (default: 3; figures are their mean)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)

    header = record.start(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = mdata.load_mnist(args.data)
    rows = []
    for style in args.styles.split(","):
        for name in args.models.split(","):
            t0 = time.perf_counter()
            draws = [measure(name, style, dataset, FineTuneConfig(model=name, threads=args.threads),
                             Path(args.checkpoints) / f"{name}.pt", args.test_limit, draw=d)
                     for d in range(1, args.draws + 1)]
            rows += draws
            before, after = (100 * float(np.mean([r[k] for r in draws])) for k in ("style_before", "style_after"))
            drop = max(r["mnist_drop_points"] for r in draws)
            verdict = "ok" if after - before >= MIN_GAIN_POINTS and drop <= MAX_DROP_POINTS else "MISSED"
            each = ", ".join(f"{100 * r['style_before']:.0f}->{100 * r['style_after']:.0f}" for r in draws)
            print(f"{style:7s} {name:7s} style {before:5.1f}% -> {after:5.1f}% ({after - before:+.1f} pt; draws {each})   "
                  f"MNIST test drop at most {drop:+.2f} pt   fine-tune {np.mean([r['seconds'] for r in draws]):.1f} s  "
                  f"[{verdict}]  (total {time.perf_counter() - t0:.0f} s)", flush=True)
    record.write(args.json, header, {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
