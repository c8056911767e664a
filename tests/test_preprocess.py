"""Preprocessing: any drawing, photo or array -> the 28x28 MNIST-like image a model expects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from digitnet import preprocess
from digitnet.data import MNIST_MEAN, MNIST_STD
from digitnet.preprocess import ImageError, stroke_width, to_mnist_array

CANVAS = 800
# A "4" as a polyline in a unit box: upright, then the diagonal and the crossbar.
FOUR = [[(0.7, 1.0), (0.7, 0.0), (0.0, 0.65), (1.0, 0.65)]]


def draw(size: int = 400, left: int = 200, top: int = 200, width: float = 0.1, canvas: tuple[int, int] = (CANVAS, CANVAS),
         strokes=FOUR) -> np.ndarray:
    """Ink (uint8 0..255, 2-D) of the digit drawn in a size x size box, stroke width relative to size."""
    im = Image.new("L", (canvas[1], canvas[0]), 0)
    d = ImageDraw.Draw(im)
    w = max(1, round(width * size))
    for stroke in strokes:
        d.line([(left + x * size, top + y * size) for x, y in stroke], fill=255, width=w, joint="curve")
    return np.asarray(im)


def rgba(ink: np.ndarray) -> np.ndarray:
    """Ink as Gradio's Sketchpad sends it: transparent canvas, black ink in alpha."""
    out = np.zeros((*ink.shape, 4), np.uint8)
    out[..., 3] = ink
    return out


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return to_mnist_array(rgba(draw()))


def close(a: np.ndarray | None, b: np.ndarray, tol: float = 0.03) -> bool:
    """Mean absolute difference below ``tol`` (a 1-pixel shift of a stroke already costs ~0.05)."""
    return a is not None and float(np.abs(a - b).mean()) < tol


def test_output_looks_like_mnist(reference):
    a = reference
    assert a.shape == (28, 28) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.max() > 0.9
    ys, xs = np.mgrid[:28, :28]
    mass = a.sum()
    # Centre of mass at MNIST's (14, 14), within the rounding of a whole-pixel shift.
    assert abs((a * ys).sum() / mass - 14.0) <= 0.5 and abs((a * xs).sum() / mass - 14.0) <= 0.5
    rows, cols = np.nonzero(a > 0.05)
    extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    assert 19 <= extent <= 22  # fitted into MNIST's 20x20 box
    assert a[0].max() == 0 and a[-1].max() == 0 and a[:, 0].max() == 0 and a[:, -1].max() == 0


@pytest.mark.parametrize(
    "size,left,top",
    [(400, 20, 20), (400, 380, 380), (160, 30, 600), (600, 190, 30), (100, 350, 350)],
    ids=["top-left", "bottom-right", "small-corner", "large", "tiny-centre"],
)
def test_shifted_or_scaled_digit_gives_the_same_28x28(reference, size, left, top):
    assert close(to_mnist_array(rgba(draw(size, left, top))), reference)


def test_thin_brush_is_thickened_like_a_thick_drawing(reference):
    # A big digit drawn with a 4 px brush: ~1% of its size where MNIST strokes are ~10%.
    thin = to_mnist_array(rgba(draw(600, 100, 100, width=4 / 600)))
    without = preprocess.STROKE_THIN
    try:
        preprocess.STROKE_THIN = 0.0
        unthickened = to_mnist_array(rgba(draw(600, 100, 100, width=4 / 600)))
    finally:
        preprocess.STROKE_THIN = without
    assert unthickened.sum() < 0.5 * reference.sum()  # a faint hairline without the fix
    assert 0.7 * reference.sum() < thin.sum() < 1.4 * reference.sum()
    assert float(np.abs(thin - reference).mean()) < 0.08


def test_stroke_width_estimate():
    bar = np.zeros((100, 100), np.float32)
    bar[10:90, 45:51] = 1.0  # 6 px wide, 80 px long
    assert stroke_width(bar) == pytest.approx(6.0, rel=0.1)


@pytest.mark.parametrize("value", [
    None,
    np.zeros((CANVAS, CANVAS, 4), np.uint8),  # untouched transparent canvas
    np.zeros((CANVAS, CANVAS, 3), np.uint8),  # RGBA with alpha dropped: all black
    np.full((CANVAS, CANVAS, 3), 255, np.uint8),  # white paper
    np.full((50, 50), 0.5, np.float32),  # one flat grey
    {"background": None, "layers": [], "composite": None},  # Gradio 6's untouched Sketchpad
    {"background": None, "layers": [None], "composite": None},
    np.zeros((1, 1), np.uint8),
    np.full((1, 1, 4), 255, np.uint8),  # a 1x1 image is one flat colour, whatever it is
], ids=["none", "rgba", "rgb-black", "white", "grey", "sketch-untouched", "sketch-none-layer", "1x1-blank", "1x1-ink"])
def test_blank_gives_none(value):
    assert to_mnist_array(value) is None


def test_faint_noise_is_not_ink():
    rng = np.random.default_rng(0)
    noise = rgba((rng.random((CANVAS, CANVAS)) * 255 * 0.15).astype(np.uint8))  # alpha below the threshold
    assert to_mnist_array(noise) is None


@dataclass
class Drawing:
    """One "4" as ink (2-D uint8, light on dark), also saved as a transparent PNG and a dark-on-white JPEG."""

    ink: np.ndarray
    png: Path
    jpg: Path

    @property
    def dark_on_white(self) -> np.ndarray:
        return 255 - self.ink


@pytest.fixture(scope="module")
def drawing(tmp_path_factory) -> Drawing:
    ink = draw(300, 100, 150, canvas=(500, 600))  # not square, not centred: every path must still agree
    folder = tmp_path_factory.mktemp("formats")
    png, jpg = folder / "digit.png", folder / "digit.jpg"
    Image.fromarray(rgba(ink)).save(png)
    Image.fromarray(255 - ink).save(jpg, quality=90)
    return Drawing(ink, png, jpg)


def _rgb(d: Drawing) -> np.ndarray:
    return np.stack([d.dark_on_white] * 3, -1)


# The same drawing in every form the app, a script or a test may pass.
FORMATS = {
    "rgba": lambda d: rgba(d.ink),
    "rgb-dark-on-white": _rgb,
    "l-dark-on-white": lambda d: d.dark_on_white,
    "l-light-on-dark": lambda d: d.ink,
    "float01": lambda d: d.ink.astype(np.float32) / 255,
    "float0255": lambda d: d.ink.astype(np.float64),
    "uint16": lambda d: d.ink.astype(np.uint16) * 257,
    "bool": lambda d: d.ink > 127,
    "channel-first": lambda d: np.moveaxis(rgba(d.ink), -1, 0),
    "hw1": lambda d: d.ink[..., None],
    "la": lambda d: np.stack([np.zeros_like(d.ink), d.ink], -1),
    "torch-11hw": lambda d: torch.from_numpy(d.ink.astype(np.float32) / 255)[None, None],
    "pil-rgba": lambda d: Image.fromarray(rgba(d.ink)),
    "pil-rgb": lambda d: Image.fromarray(_rgb(d)),
    "pil-l": lambda d: Image.fromarray(d.dark_on_white),
    "pil-p": lambda d: Image.fromarray(d.dark_on_white).convert("P"),
    "pil-1": lambda d: Image.fromarray(d.dark_on_white).convert("1"),
    "pil-i": lambda d: Image.fromarray(d.ink.astype(np.int32)),
    "pil-f": lambda d: Image.fromarray(d.ink.astype(np.float32) / 255),
    "pil-cmyk": lambda d: Image.fromarray(_rgb(d)).convert("CMYK"),
    "png-path": lambda d: str(d.png),
    "jpg-path": lambda d: d.jpg,
    "sketch-array": lambda d: {"background": None, "layers": [rgba(d.ink)], "composite": rgba(d.ink)},
    "sketch-pil": lambda d: {"background": None, "layers": [], "composite": Image.fromarray(rgba(d.ink))},
    "sketch-path": lambda d: {"background": None, "layers": [], "composite": str(d.png)},
    "sketch-filedata": lambda d: {"background": None, "layers": [], "composite": {"path": str(d.png), "url": None}},
    "sketch-layers-only": lambda d: {"background": None, "layers": [rgba(d.ink)], "composite": None},
    "sketch-white-background": lambda d: {
        "background": np.full((*d.ink.shape, 3), 255, np.uint8), "layers": [rgba(d.ink)], "composite": None},
    "rgba-opaque-white": lambda d: np.concatenate([_rgb(d), np.full((*d.ink.shape, 1), 255, np.uint8)], -1),
}


@pytest.mark.parametrize("make", [pytest.param(make, id=name) for name, make in FORMATS.items()])
def test_every_input_format_gives_the_same_28x28(drawing, make):
    expected = to_mnist_array(rgba(drawing.ink))
    got = to_mnist_array(make(drawing))
    assert got is not None
    assert got.shape == (28, 28) and got.dtype == np.float32
    assert close(got, expected, tol=0.04), f"mean diff {np.abs(got - expected).mean():.3f}"


def test_photo_of_dark_ink_on_uneven_paper(reference):
    ink = draw().astype(np.float32) / 255
    rng = np.random.default_rng(1)
    light = np.linspace(0.95, 0.75, CANVAS)[None, :]  # shadow across the page
    paper = light - 0.6 * ink + rng.normal(0, 0.02, ink.shape)
    photo = (np.clip(np.stack([paper] * 3, -1), 0, 1) * 255).astype(np.uint8)
    assert close(to_mnist_array(photo), reference, tol=0.05)


def test_light_ink_on_dark_board(reference):
    board = (40 + draw() * (180 / 255)).astype(np.uint8)  # chalk on a grey-black board
    assert close(to_mnist_array(board), reference)


@pytest.mark.parametrize("shape", [(2, 2), (3, 500), (500, 3), (801, 799), (28, 28), (7, 13)])
def test_odd_sizes(shape):
    ink = np.zeros(shape, np.uint8)
    ink[shape[0] // 3 : max(shape[0] * 2 // 3, shape[0] // 3 + 1), :] = 255  # a horizontal bar
    out = to_mnist_array(rgba(ink))
    assert out is not None and out.shape == (28, 28) and out.max() > 0.5


def test_huge_canvas_matches_the_normal_one(reference):
    ink = draw(2500, 1250, 1250, canvas=(5000, 5000))
    assert close(to_mnist_array(rgba(ink)), reference, tol=0.04)


def test_a_stray_speck_off_the_digit_does_not_shrink_it_away(reference):
    ink = draw().copy()
    ink[790:792, 5:7] = 40  # a faint anti-aliased speck below the noise threshold
    assert close(to_mnist_array(rgba(ink)), reference)


def test_to_tensor_normalises_what_the_model_sees(reference):
    x = preprocess.to_tensor(to_mnist_array(rgba(draw())))
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, (torch.from_numpy(reference) - MNIST_MEAN) / MNIST_STD)
    y = preprocess.to_tensor(to_mnist_array(rgba(draw())), mean=0.5, std=0.5)
    assert float(y.min()) == pytest.approx(-1.0) and float(y.max()) <= 1.0


def test_not_an_image_raises_image_error(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a picture of a digit\n")
    with pytest.raises(ImageError, match="notes.txt"):
        to_mnist_array(str(text))
    with pytest.raises(ImageError, match="does not exist"):
        to_mnist_array(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="shape"):
        to_mnist_array(np.zeros(5))
    with pytest.raises(ImageError):
        to_mnist_array(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ImageError):
        to_mnist_array({"composite": str(text), "background": None, "layers": []})
    assert issubclass(ImageError, ValueError)
