"""The drawing pad's payload: decoded strictly, and read exactly like the same drawing on the Sketchpad."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitnet import preprocess
from digitnet.predict import predict
from digitnet.preprocess import (
    PAD_MAX_CHARS, PAD_PREFIX, PAD_SIDE, ImageError, check_pad_value, decode_pad_payload, pad_payload, to_mnist_array,
)

CANVAS = 800  # the Sketchpad's canvas
BRUSH_WIDTH = 48  # app.py's brush radius 24, the pad's BRUSH_FRACTION of 800
# Unit-box strokes (-1..1, y down) as tests/e2e/browser.py draws them, placed like the pad does.
DIGITS = {
    "1": [[(0.05, -0.85), (0.0, 0.85)]],
    "7": [[(-0.6, -0.8), (0.6, -0.8), (-0.1, 0.85)]],
    "4": [[(-0.25, -0.85), (-0.6, 0.2), (0.6, 0.2)], [(0.3, -0.5), (0.3, 0.9)]],
}


def draw_canvas(strokes, half: float = 280, centre: tuple[float, float] = (400, 400)) -> np.ndarray:
    """The ink (uint8, 800x800) of strokes drawn with the app's round brush."""
    im = Image.new("L", (CANVAS, CANVAS), 0)
    d = ImageDraw.Draw(im)
    r = BRUSH_WIDTH / 2
    for stroke in strokes:
        points = [(centre[0] + x * half, centre[1] + y * half) for x, y in stroke]
        d.line(points, fill=255, width=BRUSH_WIDTH, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps, as the canvas draws them
            d.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(im)


def sketch_value(ink: np.ndarray) -> dict:
    """The same drawing as app.py's Sketchpad hands it to the handler (type="numpy", RGBA)."""
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = ink
    return {"background": None, "layers": [rgba], "composite": rgba}


def _png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG."""
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def png_url(image: Image.Image) -> str:
    """``image`` as a PNG data URL, the pad's format."""
    return PAD_PREFIX + base64.b64encode(_png_bytes(image)).decode("ascii")


@pytest.mark.parametrize("digit", sorted(DIGITS))
@pytest.mark.parametrize("half, centre", [(280, (400, 400)), (200, (300, 300)), (120, (200, 560)), (90, (600, 200))],
                         ids=["big", "medium", "small-corner", "tiny-corner"])
def test_pad_payload_gives_the_same_28x28_and_answer_as_the_sketchpad(digit, half, centre):
    ink = draw_canvas(DIGITS[digit], half, centre)
    payload = pad_payload(ink)  # the 800x800 canvas reduced as the browser renders it: area average
    assert payload.startswith(PAD_PREFIX) and len(payload) < 10_000  # a few kB, not a full-size image
    via_pad, via_sketch = to_mnist_array(payload), to_mnist_array(sketch_value(ink))
    # The payload's 112 px grid places a stroke only to ~1/4 of a pixel of the 28x28, so the edge
    # column of a thin stroke may differ (measured: mean 0.004-0.047, correlation 0.83-0.998).
    # Shifting the Sketchpad's own 28x28 by one whole pixel already costs a mean of 0.05-0.07
    # and a correlation of 0.45-0.87: the two are closer than that.
    diff = float(np.abs(via_pad - via_sketch).mean())
    assert diff < 0.05, f"mean abs difference {diff:.3f}"
    correlation = float(np.corrcoef(via_pad.ravel(), via_sketch.ravel())[0, 1])
    assert correlation > 0.8, f"correlation {correlation:.3f}"
    for model in ("mlp", "cnnnet", "lenet"):
        pad_answer, sketch_answer = predict(payload, model), predict(sketch_value(ink), model)
        assert pad_answer.digit == sketch_answer.digit == int(digit), model
        assert abs(pad_answer.confidence - sketch_answer.confidence) < 0.05, model


def test_decoded_payload_is_the_ink_area_averaged():
    ink = draw_canvas(DIGITS["7"])
    alpha = decode_pad_payload(pad_payload(ink))
    assert alpha.shape == (PAD_SIDE, PAD_SIDE) and alpha.dtype == np.uint8
    expected = np.asarray(Image.fromarray(ink).resize((PAD_SIDE, PAD_SIDE), Image.Resampling.BOX))
    assert np.array_equal(alpha, expected)  # PNG is lossless: exactly what was encoded
    assert alpha.max() == 255 and alpha[0].max() == 0  # full ink in the strokes, none at the edge


def test_a_payload_like_the_browser_makes_is_read():
    # The browser's canvas.toDataURL(): RGBA, ink black with alpha; a "1" drawn down the middle.
    im = Image.new("RGBA", (PAD_SIDE, PAD_SIDE), (0, 0, 0, 0))
    ImageDraw.Draw(im).line([(56, 16), (55, 96)], fill=(0, 0, 0, 255), width=7)
    assert predict(png_url(im), "lenet").digit == 1


@pytest.mark.parametrize("blank", ["", None])
def test_blank_pad_gives_none(blank):
    assert to_mnist_array(blank) is None
    assert predict(blank, "lenet") is None
    assert decode_pad_payload(blank) is None
    assert check_pad_value(blank) == ""


def test_an_empty_drawing_is_blank_too():
    assert pad_payload(np.zeros((CANVAS, CANVAS), np.uint8)) == ""
    assert to_mnist_array(png_url(Image.new("RGBA", (PAD_SIDE, PAD_SIDE), (0, 0, 0, 0)))) is None


# A valid pad-sized PNG with some ink, to be cut or corrupted.
PAD_PNG = _png_bytes(Image.fromarray(np.tile(np.arange(PAD_SIDE, dtype=np.uint8), (PAD_SIDE, 1)), "L").convert("LA"))


@pytest.mark.parametrize("value, message", [
    (PAD_PREFIX + "not base64!!", "base64"),
    (PAD_PREFIX + "iVBORw0KGgo", "base64"),  # truncated: bad padding
    (PAD_PREFIX + "é" * 8, "base64"),  # non-ASCII
    (PAD_PREFIX + base64.b64encode(b"GIF89a not a png").decode(), "not a PNG"),
    (PAD_PREFIX + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode(), "not a PNG"),
    (PAD_PREFIX + base64.b64encode(PAD_PNG[:60]).decode(), "cannot be decoded"),  # cut in the pixel data
    (PAD_PREFIX + base64.b64encode(PAD_PNG[:45] + b"\xff" * 20 + PAD_PNG[65:]).decode(), "cannot be decoded"),
    ("data:image/jpeg;base64,/9j/4AAQ", "not a drawing from the pad"),
    ("data:text/html,<script>alert(1)</script>", "not a drawing from the pad"),
], ids=["junk", "truncated", "non-ascii", "gif", "no-header", "cut-png", "corrupt-png", "jpeg-url", "html-url"])
def test_malformed_payload_raises_a_clear_image_error(value, message):
    with pytest.raises(ImageError, match=message):
        to_mnist_array(value)


@pytest.mark.parametrize("size", [(28, 28), (800, 800), (112, 113)])
def test_wrong_size_is_refused(size):
    with pytest.raises(ImageError, match=f"{size[0]}x{size[1]} pixels; the pad sends {PAD_SIDE}x{PAD_SIDE}"):
        to_mnist_array(png_url(Image.new("RGBA", size, (0, 0, 0, 0))))


def test_payload_without_alpha_is_refused():
    with pytest.raises(ImageError, match="no alpha channel"):
        to_mnist_array(png_url(Image.new("L", (PAD_SIDE, PAD_SIDE), 255)))


def test_huge_string_is_refused_before_decoding():
    huge = PAD_PREFIX + "A" * PAD_MAX_CHARS
    with pytest.raises(ImageError, match="at most 200,000"):
        to_mnist_array(huge)
    # A huge string without the prefix is neither a path nor a drawing (not handed to the file system).
    with pytest.raises(ImageError, match="neither a file path nor a drawing"):
        to_mnist_array("x" * 1_000_000)


def test_a_png_bomb_inside_the_limit_is_refused_by_its_header():
    # 10000x10000 of zeros compresses to a few kB; the size in the header refuses it unread.
    bomb = png_url(Image.new("L", (10_000, 10_000), 0))
    assert len(bomb) < PAD_MAX_CHARS
    with pytest.raises(ImageError, match="10000x10000 pixels"):
        to_mnist_array(bomb)


@pytest.mark.parametrize("junk", [12345, 3.5, b"data:image/png", ["data:"], {"value": "x"}, object()],
                         ids=["int", "float", "bytes", "list", "dict", "object"])
def test_non_string_junk_raises_image_error(junk):
    with pytest.raises(ImageError):
        to_mnist_array(junk)
    with pytest.raises(ImageError, match="sends a string"):
        check_pad_value(junk)


@pytest.mark.parametrize("value", ["/etc/passwd", "checkpoints/lenet.pt", "x\0y", "data:image/jpeg;base64,AAAA"])
def test_pad_values_are_never_read_as_paths(value):
    # The pad's handler checks its string first: a file path sent by a visitor is refused, unopened.
    with pytest.raises(ImageError, match="not a drawing from the pad"):
        check_pad_value(value)


def test_stroke_width_matches_mnist_on_the_pad():
    # The pad's brush on a big digit: after preprocessing the strokes are MNIST-like (~2 px of 20).
    seen = to_mnist_array(pad_payload(draw_canvas(DIGITS["1"])))
    rows = np.nonzero(seen.max(axis=1) > 0.5)[0]
    widths = (seen[rows] > 0.5).sum(axis=1)
    assert 1.5 <= float(np.median(widths)) <= 4.0
    assert preprocess.PAD_SIDE == PAD_SIDE == 112
