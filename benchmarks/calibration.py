"""Calibration of the shipped models, and where "not sure" should start.

For each model it reports the checkpoint's temperature T (``python -m digitnet.calibrate``),
the expected calibration error (ECE, 15 bins) at T = 1 and at T on the 10,000 MNIST test
images and on digits drawn like the Sketchpad draws them (``benchmarks/drawn.py``: MNIST
digits on an 800x800 canvas), and a threshold table: for each candidate threshold on
the calibrated top probability, the share of

- correctly read drawn digits that would be flagged "not sure" (the cost),
- wrongly read drawn digits that would be flagged (a gain: "4 or 9?" instead of a wrong answer),
- non-digits drawn the same way that would be flagged (the point of it); the rest come out
  as a confident wrong digit. The non-digits: ``scribble`` (random-walk tangles of 1-3
  strokes), ``letter`` (capital letters drawn as jittered strokes), ``font`` (capital letters
  in PIL's default font), ``two digits`` (two validation digits side by side).

The threshold is CHOSEN on drawings of the validation images (``--split val`` of
``benchmarks/drawn.py``): ``chosen`` in the JSON. The same table on drawn MNIST test digits is
only reported (the README's figure). Figures: benchmarks/RESULTS-calibration.md.

Everything is deterministic given ``--seed`` and goes through the app's own preprocessing
(``digitnet.preprocess.to_mnist_array``) and checkpoints (``digitnet.predict.CACHE``).

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.calibration -n 1000 --json out.json
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent

from benchmarks import record
from benchmarks.drawn import CANVAS, STYLES, available_models, make_drawings, render, split_digits
from digitnet.nondigits import STROKE_LETTERS, random_walks
from digitnet.calibrate import calibrated_probs, expected_calibration_error, model_logits
from digitnet.data import load_mnist, normalize, test_split
from digitnet.predict import CACHE, UNSURE_BELOW
from digitnet.preprocess import to_mnist_array

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99)
# The choice rule: "not sure" may flag at most this share of correctly read drawn digits (the
# mean over the three models): one in twenty, and then the top guess is still shown first.
# Among the thresholds that keep to it, the highest flags the most non-digits.
MAX_CORRECT_FLAGGED = 0.05
KINDS = ("scribble", "letter", "font", "two digits")
BRUSH_RADII = (3, 5, 8, 12)  # px on the 800 px canvas, thin pen to marker (benchmarks/drawn.py's range)
MIN_SIZE, MAX_SIZE = 0.25, 0.75  # the drawing's longer side relative to the canvas
LETTER_JITTER = 0.03  # of the letter's height: hands do not draw straight lines
MAX_TILT = 10.0  # degrees
# Capital letters as strokes in a unit box (x right, y down): those of digitnet.nondigits (the same strokes),
# and a few that look a little like digits (B ~ 8, T ~ 7, Y ~ 4, Z ~ 2), to be honest about the hard cases.
LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    **{k: STROKE_LETTERS[k] for k in 'AEFHKMNRWX'},
    'B': [[(0, 0), (0, 1)], [(0, 0), (0.6, 0), (0.8, 0.1), (0.8, 0.4), (0.6, 0.5), (0, 0.5)],
          [(0, 0.5), (0.7, 0.5), (0.9, 0.62), (0.9, 0.88), (0.7, 1), (0, 1)]],
    'T': [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    'Y': [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
    'Z': [[(0, 0), (1, 0), (0, 1), (1, 1)]],
}


def _stroke_canvas(strokes: list[np.ndarray], radius: int, canvas: int = CANVAS) -> np.ndarray:
    """Polylines in canvas pixels drawn with a round brush -> (canvas, canvas, 4) RGBA, ink in alpha."""
    alpha = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(alpha)
    for points in strokes:
        pts = [tuple(p) for p in points.tolist()]
        if len(pts) > 1:
            draw.line(pts, fill=255, width=2 * radius + 1, joint="curve")
        for x, y in (pts[0], pts[-1]):  # round caps, as a canvas brush has
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    out = np.zeros((canvas, canvas, 4), np.uint8)
    out[..., 3] = np.asarray(alpha)
    return out


def _place(strokes: list[np.ndarray], rng: np.random.Generator, canvas: int = CANVAS) -> list[np.ndarray]:
    """Scale unit-box strokes to a random size and a random place on the canvas."""
    size = rng.uniform(MIN_SIZE, MAX_SIZE) * canvas
    margin = 20
    left = rng.uniform(margin, canvas - size - margin)
    top = rng.uniform(margin, canvas - size - margin)
    return [s * size + np.array([left, top]) for s in strokes]


def scribble(rng: np.random.Generator, canvas: int = CANVAS) -> np.ndarray:
    """A random-walk tangle of 1-3 smooth strokes: what a bored visitor draws."""
    strokes = random_walks(rng, (15, 60), 0.5)
    allpts = np.concatenate(strokes)
    lo, hi = allpts.min(0), allpts.max(0)
    strokes = [(s - lo) / max(float((hi - lo).max()), 1e-6) for s in strokes]  # into the unit box
    return _stroke_canvas(_place(strokes, rng, canvas), int(rng.choice(BRUSH_RADII)), canvas)


def _tilt(points: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - 0.5) @ rot.T + 0.5


def stroke_letter(letter: str, rng: np.random.Generator, canvas: int = CANVAS) -> np.ndarray:
    """A capital letter drawn as strokes: jittered points, a random width, slant and size."""
    width = rng.uniform(0.6, 1.0)
    tilt = rng.uniform(-MAX_TILT, MAX_TILT)
    strokes = []
    for stroke in LETTERS[letter]:
        pts = np.array(stroke, dtype=np.float64)
        pts[:, 0] = 0.5 + (pts[:, 0] - 0.5) * width
        pts = pts + rng.normal(0, LETTER_JITTER, pts.shape)
        strokes.append(_tilt(pts, tilt))
    return _stroke_canvas(_place(strokes, rng, canvas), int(rng.choice(BRUSH_RADII)), canvas)


def font_letter(letter: str, rng: np.random.Generator, canvas: int = CANVAS) -> np.ndarray:
    """A capital letter in PIL's default (scalable) font, at a random size and place."""
    size = int(rng.uniform(MIN_SIZE, MAX_SIZE) * canvas)
    font = ImageFont.load_default(size=size)
    alpha = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(alpha)
    x0, y0, x1, y1 = draw.textbbox((0, 0), letter, font=font)
    left = rng.uniform(0, max(canvas - (x1 - x0), 1)) - x0
    top = rng.uniform(0, max(canvas - (y1 - y0), 1)) - y0
    draw.text((left, top), letter, fill=255, font=font)
    out = np.zeros((canvas, canvas, 4), np.uint8)
    out[..., 3] = np.asarray(alpha)
    return out


def _ink_crop(alpha: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(alpha)
    return alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def two_digits(images: np.ndarray, rng: np.random.Generator, canvas: int = CANVAS) -> np.ndarray:
    """Two MNIST digits written side by side, as a person writes "42": same style, same height."""
    style = STYLES[int(rng.integers(len(STYLES)))]
    height = int(rng.uniform(MIN_SIZE, 0.6) * canvas)
    gap = int(rng.uniform(0.05, 0.3) * height)
    parts = []
    for _ in range(2):
        img = images[int(rng.integers(len(images)))]
        part, _, _ = render(img, rng, style, canvas=canvas // 2)  # drawn like benchmarks/drawn.py, then cropped
        ink = _ink_crop(part[..., 3])
        width = max(1, round(ink.shape[1] * height / ink.shape[0]))
        parts.append(np.asarray(Image.fromarray(ink).resize((width, height), Image.Resampling.BILINEAR)))
    total = min(parts[0].shape[1] + gap + parts[1].shape[1], canvas)
    left = int(rng.integers(0, canvas - total + 1))
    top = int(rng.integers(0, canvas - height + 1))
    out = np.zeros((canvas, canvas, 4), np.uint8)
    for part, x in ((parts[0], left), (parts[1], left + parts[0].shape[1] + gap)):
        w = min(part.shape[1], canvas - x)
        if w > 0:
            region = out[top : top + height, x : x + w, 3]
            np.maximum(region, part[:, :w], out=region)
    return out


def make_non_digits(kind: str, n: int, seed: int = 0, data_root: str | None = None) -> list[np.ndarray]:
    """``n`` deterministic canvases (800x800 RGBA, ink in alpha) of one non-digit ``kind``."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    letters = sorted(LETTERS)
    if kind == "scribble":
        return [scribble(rng) for _ in range(n)]
    if kind == "letter":
        return [stroke_letter(letters[i % len(letters)], rng) for i in range(n)]
    if kind == "font":
        return [font_letter(letters[i % len(letters)], rng) for i in range(n)]
    if kind == "two digits":
        images = split_digits("val", data_root)[0].numpy()  # validation digits: these tables choose
        return [two_digits(images, rng) for _ in range(n)]
    raise ValueError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")


def seen_batch(canvases: list[np.ndarray]) -> torch.Tensor:
    """The preprocessed 28x28s, (N, 28, 28) float in [0, 1]; a blank canvas (never here) is all zeros."""
    seen = [to_mnist_array(c) for c in canvases]
    return torch.from_numpy(np.stack([s if s is not None else np.zeros((28, 28), np.float32) for s in seen]))


@torch.inference_mode()
def batch_logits(name: str, seen: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(logits (N, 10), the checkpoint's temperature) of one model on preprocessed images."""
    model, ckpt = CACHE.get(name)
    x = normalize(seen * 255.0, ckpt["mean"], ckpt["std"])
    return model(x).float(), float(ckpt.get("temperature", 1.0))


def threshold_table(top_correct: torch.Tensor, top_wrong: torch.Tensor, top_other: dict[str, torch.Tensor],
                    thresholds=THRESHOLDS) -> list[dict]:
    """Per threshold: the share (0..1) flagged unsure of correct digits, wrong digits and each non-digit kind."""
    rows = []
    for t in thresholds:
        row = {"threshold": t,
               "correct_flagged": float((top_correct < t).float().mean()) if len(top_correct) else float("nan"),
               "wrong_flagged": float((top_wrong < t).float().mean()) if len(top_wrong) else float("nan")}
        for kind, top in top_other.items():
            row[kind] = float((top < t).float().mean())
        row["non_digits"] = float(torch.cat(list(top_other.values())).lt(t).float().mean())
        rows.append(row)
    return rows


def mean_table(tables: list[list[dict]]) -> list[dict]:
    """The threshold tables of several models averaged row by row (each model counts once)."""
    return [{key: tables[0][i][key] if key == "threshold" else float(np.mean([t[i][key] for t in tables]))
             for key in tables[0][i]} for i in range(len(tables[0]))]


def together(drawn: dict[str, torch.Tensor], other: dict[str, dict[str, torch.Tensor]], labels: torch.Tensor) -> dict:
    """The models as a committee: how often they disagree, and the threshold table of "disagree, or the
    mean of their calibrated probabilities is below the threshold" (a mean's top can never be higher
    than every model's, so this flags at least what the mean alone flags)."""
    def disagree(probs: list[torch.Tensor]) -> torch.Tensor:
        tops = torch.stack([p.argmax(1) for p in probs])  # (models, N)
        return (tops != tops[0]).any(0)

    d_probs = list(drawn.values())
    d_mean = torch.stack(d_probs).mean(0)
    right = d_mean.argmax(1) == labels  # read correctly by the committee (some member may still disagree)
    d_off, d_top = disagree(d_probs), d_mean.max(1).values
    kinds = list(next(iter(other.values())))
    o_off = {k: disagree([other[m][k] for m in other]) for k in kinds}
    o_top = {k: torch.stack([other[m][k] for m in other]).mean(0).max(1).values for k in kinds}
    # A flagged sample gets top "probability" 0 below, so threshold_table counts it at every threshold.
    flag_top = lambda top, off: torch.where(off, torch.zeros_like(top), top)  # noqa: E731
    return {
        "disagree": {"correct": float(d_off[right].float().mean()),
                     **{k: float(o_off[k].float().mean()) for k in kinds}},
        "table": threshold_table(flag_top(d_top, d_off)[right], flag_top(d_top, d_off)[~right],
                                 {k: flag_top(o_top[k], o_off[k]) for k in kinds}),
    }


def choose_threshold(table: list[dict], max_correct_flagged: float = MAX_CORRECT_FLAGGED) -> float | None:
    """The highest threshold that flags at most ``max_correct_flagged`` of the correct digits."""
    ok = [row["threshold"] for row in table if row["correct_flagged"] <= max_correct_flagged]
    return max(ok) if ok else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=1000, help="drawn digits, of validation and of test each (default: 1000)")
    p.add_argument("--others", type=int, default=300, help="drawings of each non-digit kind (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of every drawing (default: 0)")
    p.add_argument("--data", default=None, help="MNIST root (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)

    header = record.start(argv)
    torch.set_num_threads(1)  # small batches on a shared 2-core machine (see digitnet/predict.py)
    t0 = time.perf_counter()
    data = load_mnist(args.data)
    test = test_split(data)
    drawings = make_drawings(args.n, args.seed, args.data, split="test")
    drawn_seen = seen_batch([d.canvas for d in drawings])
    drawn_labels = torch.tensor([d.label for d in drawings])
    val_drawings = make_drawings(args.n, args.seed, args.data, split="val")
    val_seen = seen_batch([d.canvas for d in val_drawings])
    val_labels = torch.tensor([d.label for d in val_drawings])
    other_seen = {kind: seen_batch(make_non_digits(kind, args.others, args.seed, args.data)) for kind in KINDS}
    print(f"rendered and preprocessed {args.n} drawn validation and {args.n} drawn test digits and {args.others} of each of {', '.join(KINDS)} "
          f"in {time.perf_counter() - t0:.1f}s (seed {args.seed})")

    figures: dict = {"n": args.n, "others": args.others, "seed": args.seed, "unsure_below": UNSURE_BELOW, "models": {}}
    drawn_by_model: dict[str, torch.Tensor] = {}  # calibrated probabilities, for the three-model section
    other_by_model: dict[str, dict[str, torch.Tensor]] = {}
    val_tables = []  # the threshold tables on drawn validation digits: what chooses
    for name in available_models():
        model, ckpt = CACHE.get(name)
        temperature = float(ckpt.get("temperature", 1.0))
        test_logits = model_logits(model, test, ckpt["mean"], ckpt["std"])
        drawn_logits, _ = batch_logits(name, drawn_seen)
        drawn_probs = calibrated_probs(drawn_logits, temperature)
        top, pred = drawn_probs.max(1)
        correct = pred == drawn_labels
        other_probs = {kind: calibrated_probs(batch_logits(name, seen)[0], temperature) for kind, seen in other_seen.items()}
        top_other = {kind: probs.max(1).values for kind, probs in other_probs.items()}
        drawn_by_model[name], other_by_model[name] = drawn_probs, other_probs
        val_top, val_pred = calibrated_probs(batch_logits(name, val_seen)[0], temperature).max(1)
        val_correct = val_pred == val_labels
        val_tables.append(threshold_table(val_top[val_correct], val_top[~val_correct], top_other))
        figures["models"][name] = {
            "temperature": temperature,
            "test_acc": float((test_logits.argmax(1) == test.labels).float().mean()),
            "test_ece_before": expected_calibration_error(calibrated_probs(test_logits), test.labels),
            "test_ece_after": expected_calibration_error(calibrated_probs(test_logits, temperature), test.labels),
            "drawn_acc": float(correct.float().mean()),
            "drawn_ece_before": expected_calibration_error(calibrated_probs(drawn_logits), drawn_labels),
            "drawn_ece_after": expected_calibration_error(drawn_probs, drawn_labels),
            "non_digit_median_top": {kind: float(t.median()) for kind, t in top_other.items()},
            "table": threshold_table(top[correct], top[~correct], top_other),
            "val_drawn_acc": float(val_correct.float().mean()),
        }

    print(f"\n{'model':8s} {'T':>6s} {'test acc':>9s} {'test ECE 1 -> T':>17s} {'drawn acc':>10s} {'drawn ECE 1 -> T':>17s}")
    for name, f in figures["models"].items():
        print(f"{name:8s} {f['temperature']:6.3f} {100 * f['test_acc']:8.2f}% "
              f"{100 * f['test_ece_before']:7.2f}% -> {100 * f['test_ece_after']:5.2f}% {100 * f['drawn_acc']:9.1f}% "
              f"{100 * f['drawn_ece_before']:7.2f}% -> {100 * f['drawn_ece_after']:5.2f}%")
    if len(drawn_by_model) > 1:
        figures["together"] = together(drawn_by_model, other_by_model, drawn_labels)
    figures["mean_table"] = mean_table([f["table"] for f in figures["models"].values()])  # test: reported
    figures["val_mean_table"] = mean_table(val_tables)
    figures["chosen"] = choose_threshold(figures["val_mean_table"])  # chosen on validation only
    print("\nflagged 'not sure' (calibrated top probability < threshold), % of each group; "
          "a non-digit not flagged is a confident wrong digit")
    cols = ["correct_flagged", "wrong_flagged", *KINDS, "non_digits"]
    titles = ["correct digits", "wrong digits", *KINDS, "all non-digits"]
    tables = [(name, f["table"]) for name, f in figures["models"].items()] + [("mean", figures["mean_table"])]
    for name, table in tables:
        print(f"\n{name:8s}{'threshold':>10s}" + "".join(f"{t:>16s}" for t in titles))
        for row in table:
            print(f"{'':8s}{row['threshold']:10.2f}" + "".join(f"{100 * row[c]:15.1f}%" for c in cols))
        if name in figures["models"]:
            medians = figures["models"][name]["non_digit_median_top"]
            print(f"{'':8s}{'median top':>10s}{'':32s}" + "".join(f"{100 * medians[k]:15.1f}%" for k in KINDS))
    print(f"\nhighest threshold flagging at most {100 * MAX_CORRECT_FLAGGED:.0f}% of correct drawn VALIDATION digits "
          f"(mean of the models; the tables above are test, for reporting): "
          f"{figures['chosen']}; digitnet.predict.UNSURE_BELOW = {UNSURE_BELOW}")
    if "together" in figures:
        t = figures["together"]
        print(f"\nthe models together ({', '.join(drawn_by_model)}): they disagree on the top digit for "
              f"{100 * t['disagree']['correct']:.1f}% of the drawn digits the mean reads correctly, for "
              + ", ".join(f"{100 * t['disagree'][k]:.1f}% of {k}" for k in KINDS)
              + "; 'not sure' when they disagree or the mean of their probabilities is below the threshold:")
        print(f"{'':8s}{'threshold':>10s}" + "".join(f"{x:>16s}" for x in titles))
        for row in t["table"]:
            print(f"{'':8s}{row['threshold']:10.2f}" + "".join(f"{100 * row[c]:15.1f}%" for c in cols))
    record.write(args.json, header, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
