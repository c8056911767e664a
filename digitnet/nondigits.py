"""Drawings that are not one digit, made on demand: what the "not a digit" detector learns from and is judged on.

A visitor draws letters, scribbles, shapes and numbers of two digits as often as digits. The
digit models, trained on MNIST alone, read each of those as a confident digit. Nobody has a
data set of such drawings, so they are generated, as the drawing pad would send them: strokes
on a square canvas of ``CANVAS`` px, rendered with the pad's own round brush (or a font's
strokes), area-averaged to the pad's 112x112 ink (``preprocess.PAD_SIDE``) and brought to
MNIST's form by the app's own ``preprocess`` (the same 28x28 the models see).

Kinds (``KINDS``):

- ``font``: a letter from a TrueType font at a random size, slant, rotation and weight
  (letters that a digit may honestly look like, such as O, I, l, S, Z, b, g, are left out);
- ``stroke letter``: a capital letter drawn as jittered strokes with the pad's brush;
- ``scribble``: a random walk of 1-3 smooth strokes;
- ``shape``: triangles, squares, stars, hearts, arrows, zigzags, crosses, ticks, houses, faces
  (no spiral or plain circle: at 28x28 those are a 6 or a 0);
- ``two digits``: two MNIST digits written side by side, as a person writes "42".

Each ``make`` call is deterministic given its seed. The training, validation and test sets use
different seeds, and different MNIST images for ``two digits`` (train, validation and test
splits); the test set's fonts are not the training fonts (``FONTS``), so a test figure is a
figure on letters the detector never saw in that typeface.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from . import preprocess
from .preprocess import PAD_SIDE

CANVAS = 2 * PAD_SIDE  # drawn at twice the pad's payload, then area-averaged to it (anti-aliased)
BRUSH_FRACTION = 24 / 800  # the pad's brush radius / its side (digitnet.ui.pad.BRUSH_FRACTION)
MIN_SIZE, MAX_SIZE = 0.3, 0.9  # a drawing's longer side relative to the canvas
JITTER = 0.03  # of the drawing's size: hands do not draw straight lines
MAX_TILT = 15.0  # degrees
KINDS = ("font", "stroke letter", "scribble", "shape", "two digits")

# Letters that a digit may honestly look like are not "not a digit": O/o/D/Q (0), I/l/i/j/J (1),
# Z/z (2), S/s (5), b/G (6), T/t/Y/y (7, 4), B (8), g/q (9), A few others stay in on purpose
# (A, H, K, ...): the digit models read them as digits today, which is the complaint.
SIMILAR_TO_DIGITS = set("OoDQIlijJZzSsbGTtYyBgqU")
LETTERS_ALL = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in SIMILAR_TO_DIGITS]
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
# Typefaces by split: the detector trains on DejaVu, is tuned on DejaVu with other seeds, and is
# reported on Liberation. Without either, PIL's own scalable font stands in (it ships with Pillow).
FONTS = {"train": "DejaVu", "val": "DejaVu", "test": "Liberation"}

# Capital letters as strokes in a unit box (x right, y down), from benchmarks/calibration.py.
STROKE_LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.22, 0.6), (0.78, 0.6)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.75, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.75, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0, 0.55)], [(0.3, 0.4), (1, 1)]],
    "M": [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "R": [[(0, 1), (0, 0), (0.7, 0), (0.9, 0.12), (0.9, 0.38), (0.7, 0.5), (0, 0.5)], [(0.35, 0.5), (1, 1)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.35), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "P": [[(0, 1), (0, 0), (0.7, 0), (0.9, 0.12), (0.9, 0.38), (0.7, 0.5), (0, 0.5)]],
    "L": [[(0, 0), (0, 1), (0.8, 1)]],
    "C": [[(0.9, 0.15), (0.6, 0), (0.3, 0.05), (0.05, 0.3), (0.05, 0.7), (0.3, 0.95), (0.6, 1), (0.9, 0.85)]],
}


def _unit(points) -> np.ndarray:
    return np.asarray(points, dtype=np.float64)


def _star(n: int = 5) -> list[np.ndarray]:
    angles = np.arange(2 * n + 1) * math.pi / n - math.pi / 2
    radii = np.where(np.arange(2 * n + 1) % 2 == 0, 0.5, 0.2)
    return [np.stack([0.5 + radii * np.cos(angles), 0.5 + radii * np.sin(angles)], 1)]


def _heart() -> list[np.ndarray]:
    t = np.linspace(0, 2 * math.pi, 60)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [np.stack([(x + 17) / 34, (y + 17) / 34], 1)]


SHAPES: dict[str, Callable[[], list[np.ndarray]]] = {
    "triangle": lambda: [_unit([(0.5, 0), (1, 1), (0, 1), (0.5, 0)])],
    "square": lambda: [_unit([(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)])],
    "star": _star,
    "heart": _heart,
    "arrow": lambda: [_unit([(0, 0.5), (1, 0.5)]), _unit([(0.7, 0.2), (1, 0.5), (0.7, 0.8)])],
    "zigzag": lambda: [_unit([(0, 0.2), (0.25, 0.8), (0.5, 0.2), (0.75, 0.8), (1, 0.2)])],
    "plus": lambda: [_unit([(0.5, 0), (0.5, 1)]), _unit([(0, 0.5), (1, 0.5)])],
    "tick": lambda: [_unit([(0, 0.55), (0.35, 1), (1, 0)])],
    "hash": lambda: [_unit([(0.3, 0), (0.2, 1)]), _unit([(0.8, 0), (0.7, 1)]),
                     _unit([(0, 0.33), (1, 0.33)]), _unit([(0, 0.67), (1, 0.67)])],
    "smiley": lambda: [np.stack([0.5 + 0.5 * np.cos(t), 0.5 + 0.5 * np.sin(t)], 1) for t in [np.linspace(0, 2 * math.pi, 50)]]
    + [_unit([(0.3, 0.62), (0.4, 0.74), (0.6, 0.74), (0.7, 0.62)]), _unit([(0.35, 0.35)]), _unit([(0.65, 0.35)])],
    "house": lambda: [_unit([(0, 1), (0, 0.4), (0.5, 0), (1, 0.4), (1, 1), (0, 1)])],
}


# ----------------------------------------------------------------------------- drawing


def _brush(rng: np.random.Generator) -> float:
    """The pad's brush radius on CANVAS, or a little thinner/thicker (a finger, a zoomed page)."""
    return BRUSH_FRACTION * CANVAS * float(rng.uniform(0.6, 1.5))


def strokes_canvas(strokes: list[np.ndarray], radius: float) -> np.ndarray:
    """Polylines in canvas pixels drawn with a round brush -> (CANVAS, CANVAS) uint8 ink."""
    ink = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(ink)
    r = max(radius, 0.5)
    for points in strokes:
        pts = [tuple(p) for p in np.asarray(points, dtype=np.float64).tolist()]
        if len(pts) > 1:
            draw.line(pts, fill=255, width=max(1, round(2 * r)), joint="curve")
        for x, y in pts[:1] + pts[-1:]:  # round caps (and a lone point is a dot)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(ink)


def _tilt(points: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - 0.5) @ rot.T + 0.5


def _place(strokes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Unit-box strokes scaled to a random size (aspect kept) and put at a random place on the canvas."""
    allpts = np.concatenate(strokes)
    lo, hi = allpts.min(0), allpts.max(0)
    extent = max(float((hi - lo).max()), 1e-6)
    size = rng.uniform(MIN_SIZE, MAX_SIZE) * CANVAS
    span = (hi - lo) / extent * size
    margin = 0.06 * CANVAS
    left = rng.uniform(margin, max(CANVAS - span[0] - margin, margin + 1))
    top = rng.uniform(margin, max(CANVAS - span[1] - margin, margin + 1))
    return [(s - lo) / extent * size + np.array([left, top]) for s in strokes]


def _jittered(strokes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Strokes resampled densely, wobbled like a hand, slanted and squeezed a little."""
    tilt = rng.uniform(-MAX_TILT, MAX_TILT)
    squeeze = rng.uniform(0.6, 1.0)
    out = []
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=np.float64)
        if len(pts) > 1:  # 8 points per segment, so the wobble bends the line, not just its corners
            t = np.linspace(0, len(pts) - 1, 8 * (len(pts) - 1) + 1)
            pts = np.stack([np.interp(t, np.arange(len(pts)), pts[:, k]) for k in range(2)], 1)
        wobble = np.cumsum(rng.normal(0, JITTER / 3, pts.shape), 0) + rng.normal(0, JITTER, (1, 2))
        pts = pts + wobble
        pts[:, 0] = 0.5 + (pts[:, 0] - 0.5) * squeeze
        out.append(_tilt(pts, tilt))
    return out


def stroke_letter(rng: np.random.Generator) -> np.ndarray:
    """A capital letter drawn as strokes with the pad's brush."""
    letter = sorted(STROKE_LETTERS)[int(rng.integers(len(STROKE_LETTERS)))]
    return strokes_canvas(_place(_jittered(STROKE_LETTERS[letter], rng), rng), _brush(rng))


def shape(rng: np.random.Generator) -> np.ndarray:
    """A hand-drawn shape (no plain circle or ellipse: those are zeros)."""
    name = sorted(SHAPES)[int(rng.integers(len(SHAPES)))]
    return strokes_canvas(_place(_jittered(SHAPES[name](), rng), rng), _brush(rng))


def random_walks(rng: np.random.Generator, steps: tuple[int, int], turn: float) -> list[np.ndarray]:
    """1-3 smooth random walks of ``steps`` (low, high) points, direction wandering by ``turn`` a step."""
    strokes = []
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.integers(*steps))
        heading = rng.uniform(0, 2 * math.pi)
        wander = np.cumsum(rng.normal(0, turn, n))  # the direction wanders smoothly
        step = np.stack([np.cos(heading + wander), np.sin(heading + wander)], 1) * 0.05
        strokes.append(np.cumsum(step, 0) + rng.uniform(0, 1, 2))
    return strokes


def scribble(rng: np.random.Generator) -> np.ndarray:
    """A random-walk tangle of 1-3 long, smooth strokes: what a bored visitor draws."""
    return strokes_canvas(_place(random_walks(rng, (40, 120), 0.6), rng), _brush(rng))


def font_files(family: str) -> list[Path]:
    """The TrueType files of a family installed here (DejaVu, Liberation), [] when there are none."""
    return sorted(p for d in FONT_DIRS for p in Path(d).glob(f"{family}*.ttf") if "Math" not in p.name)


def font_letter(rng: np.random.Generator, fonts: list[Path]) -> np.ndarray:
    """A letter in a font at a random size, slant, rotation and stroke weight."""
    letter = LETTERS_ALL[int(rng.integers(len(LETTERS_ALL)))]
    size = int(rng.uniform(MIN_SIZE, MAX_SIZE) * CANVAS)
    font = (ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), size) if fonts
            else ImageFont.load_default(size=size))
    glyph = Image.new("L", (2 * CANVAS, 2 * CANVAS), 0)
    ImageDraw.Draw(glyph).text((CANVAS // 2, CANVAS // 2), letter, fill=255, font=font)
    shear = math.tan(math.radians(rng.uniform(-20, 20)))
    glyph = glyph.transform(glyph.size, Image.Transform.AFFINE, (1, shear, -shear * CANVAS, 0, 1, 0),
                            Image.Resampling.BILINEAR)
    glyph = glyph.rotate(rng.uniform(-MAX_TILT, MAX_TILT), Image.Resampling.BILINEAR)
    weight = int(rng.integers(0, 3))  # 0: as the font draws it; 1-2: bolder, like a marker
    if weight:
        glyph = glyph.filter(ImageFilter.MaxFilter(2 * weight + 1))
    box = glyph.getbbox()
    if box is None:
        return np.zeros((CANVAS, CANVAS), np.uint8)
    ink = glyph.crop(box)
    scale = min(1.0, (CANVAS * 0.92) / max(ink.size))
    if scale < 1.0:
        ink = ink.resize((max(1, round(ink.width * scale)), max(1, round(ink.height * scale))), Image.Resampling.BOX)
    out = Image.new("L", (CANVAS, CANVAS), 0)
    out.paste(ink, (int(rng.integers(0, CANVAS - ink.width + 1)), int(rng.integers(0, CANVAS - ink.height + 1))))
    return np.asarray(out)


def two_digits(rng: np.random.Generator, images: np.ndarray) -> np.ndarray:
    """Two MNIST digits side by side at one height, with a gap of 0-30% of it (as "42" is written)."""
    height = int(rng.uniform(0.3, 0.6) * CANVAS)
    gap = int(rng.uniform(0.0, 0.3) * height)
    parts = []
    for _ in range(2):
        digit = images[int(rng.integers(len(images)))]
        ys, xs = np.nonzero(digit)
        crop = Image.fromarray(digit[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])
        width = max(1, round(crop.width * height / crop.height))
        parts.append(np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR)))
    total = min(parts[0].shape[1] + gap + parts[1].shape[1], CANVAS)
    left = int(rng.integers(0, CANVAS - total + 1))
    top = int(rng.integers(0, CANVAS - height + 1))
    out = np.zeros((CANVAS, CANVAS), np.uint8)
    for part, x in ((parts[0], left), (parts[1], left + parts[0].shape[1] + gap)):
        w = min(part.shape[1], CANVAS - x)
        if w > 0:
            np.maximum(out[top: top + height, x: x + w], part[:, :w], out=out[top: top + height, x: x + w])
    return out


def seen(ink: np.ndarray) -> np.ndarray | None:
    """A canvas's ink as the models see it: area-averaged to the pad's 112x112, then preprocessed (28x28)."""
    pad = np.asarray(Image.fromarray(ink).resize((PAD_SIDE, PAD_SIDE), Image.Resampling.BOX))
    return preprocess.ink_to_mnist(pad)


def make(kind: str, n: int, seed: int, split: str = "train", digit_images: np.ndarray | None = None) -> np.ndarray:
    """``n`` non-digits of one kind as the models see them, (n, 28, 28) float32 in [0, 1]; deterministic.

    ``split`` picks the typeface family for ``font`` (``FONTS``); ``two digits`` needs
    ``digit_images`` ((N, 28, 28) uint8 MNIST images of that split).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    fonts = font_files(FONTS[split]) if kind == "font" else []
    if kind == "two digits" and digit_images is None:
        raise ValueError("two digits needs digit_images")
    out = []
    while len(out) < n:
        if kind == "font":
            ink = font_letter(rng, fonts)
        elif kind == "stroke letter":
            ink = stroke_letter(rng)
        elif kind == "scribble":
            ink = scribble(rng)
        elif kind == "shape":
            ink = shape(rng)
        else:
            ink = two_digits(rng, digit_images)
        image = seen(ink)
        if image is not None:  # a glyph clipped off the canvas entirely: draw another
            out.append(image)
    return np.stack(out).astype(np.float32)
