"""Bring a drawing, photo or array of a digit to the form MNIST digits have.

MNIST digits were made by fitting the digit into a 20x20 box (keeping its aspect
ratio, anti-aliased) and then placing it in a 28x28 frame so that its centre of
mass sits at the centre; white ink on black. A drawing on an 800x800 canvas, off
centre and of any size, must be brought to the same form or the models misread it.

Pipeline (``to_mnist_array``):

1. read the input (Sketchpad dict, array, PIL image, file path) as a PIL image or a uint8
   array; a big JPEG file is decoded at a reduced size;
2. ink extraction: on a transparent canvas (Gradio's Sketchpad) the ink is the alpha
   channel; an opaque image is grey-scaled and its polarity (dark ink on light paper
   or light on dark) found from the median brightness. A huge channel is shrunk first
   with an integer box reduction, so a 5000x5000 photo costs milliseconds, not seconds;
   faint noise is cut off;
3. crop to the ink's bounding box;
4. stroke width: a big digit drawn with a thin brush has strokes far thinner, relative
   to its size, than MNIST's; such strokes are thickened (``normalize_stroke``);
5. fit into 20x20 keeping the aspect ratio, anti-aliased;
6. place in 28x28 with the centre of mass at the centre.

The drawing pad (``digitnet.ui.pad``) sends a small payload instead of a Sketchpad value:
a PNG data URL (``data:image/png;base64,...``) of a PAD_SIDE x PAD_SIDE image whose alpha
channel is the ink (255 = full ink; RGB is ignored), or "" for a blank pad. The browser
renders the strokes straight onto that small canvas, anti-aliased, which is what
area-averaging the same strokes drawn on a big canvas gives (``pad_payload`` does exactly
that in Python). ``to_mnist_array`` recognises it by its prefix, decodes it strictly
(``decode_pad_payload``: at most PAD_MAX_CHARS characters, base64, a PNG of exactly that
size with an alpha channel, else ImageError) and runs its alpha channel through steps 3-6.
A handler fed by the pad calls ``check_pad_value`` first, so that no visitor can make the
server open a file path by sending one where a drawing belongs.

Step 1 and the pad's payload are ``digitnet.images`` (reading input safely); this module re-exports
its public names. Pure: numpy, PIL and torch only (never gradio), so scripts and tests can use it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

from .data import MNIST_MEAN, MNIST_STD
# Reading the input is images.py's; its public names are re-exported here, where callers import them.
from .images import (EXIF_ORIENTATION, FILE_DATA_TYPE, MAX_INPUT_PIXELS, MAX_INPUT_SIDE,  # noqa: F401
                     MAX_PATH_CHARS, PAD_MAX_CHARS, PAD_PREFIX, PAD_SIDE, PNG_SIGNATURE, SKETCH_PARTS,
                     UPLOAD_REFUSED, ImageError, _to_image, _to_uint8_array, check_pad_value, confine_uploads,
                     decode_pad_payload, is_pad_payload, pad_payload, uploaded_file, uploaded_path)

MNIST_SIZE = 28  # side of the frame the models see
DIGIT_BOX = 20  # MNIST digits were fitted into 20x20 inside the 28x28 frame
# MNIST's mean centre of mass, in pixel-index coordinates, over the 10,000 test digits
# is (13.99, 14.01): the digit's mass is centred on pixel index 14, not 13.5.
MNIST_CENTER = 14.0
# After cropping, the digit is brought to at most this side before stroke-width
# normalisation: 4x the final 20 px keeps stroke detail and makes the rest cheap.
WORK_SIDE = 80
# Ink below this fraction of full strength is noise (paper texture, JPEG artefacts,
# the faintest anti-aliased brush edge); it neither counts for the crop nor is kept.
INK_THRESHOLD = 0.2
# Stroke width relative to the digit's longer side. MNIST's median is 0.10 (2 px in
# the 20 px box; 5th percentile 0.066) with the estimator in ``stroke_width``. Thinner
# strokes are thickened up to STROKE_TARGET (see ``normalize_stroke``).
STROKE_THIN = 0.07
STROKE_TARGET = 0.10
# Opaque pictures (photos, scans) are lit unevenly; their paper level is estimated on a
# coarse grid of this many cells along the longer side, for images at least this big.
BACKGROUND_GRID = 32
STROKE_MASK_LEVEL = 0.1  # ink above this belongs to a stroke when measuring its outline
BACKGROUND_MIN_SIDE = 64


def _shrink(channel: np.ndarray) -> np.ndarray:
    """Integer box reduction of a huge 2-D uint8 channel so the rest costs milliseconds."""
    factor = math.ceil(max(channel.shape) / MAX_INPUT_SIDE)
    if factor <= 1:
        return channel
    return np.asarray(Image.fromarray(np.ascontiguousarray(channel)).reduce(factor))


def _gray(arr: np.ndarray) -> np.ndarray:
    """uint8 array -> uint8 luminance (H, W); a partly transparent picture is put on white paper."""
    if arr.ndim == 2:
        return arr
    if arr.shape[-1] in (2, 4) and int(arr[..., -1].min()) < 255:
        alpha = arr[..., -1:].astype(np.float32) / 255.0
        arr = (arr[..., :-1] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    if arr.shape[-1] in (1, 2):
        return np.ascontiguousarray(arr[..., 0])
    # ITU-R 601 luma, as PIL's convert("L"), in C.
    return np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., :3])).convert("L"))


def _transparent_border(alpha: np.ndarray) -> bool:
    """Whether a 2-D alpha channel is mostly transparent along its edges (a drawing canvas)."""
    border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    return bool(np.median(border) < 128)


def _canvas_alpha(im: Image.Image | np.ndarray) -> np.ndarray | None:
    """The alpha channel of a PIL picture on a transparent canvas (a Sketchpad drawing), else None.

    Only the alpha channel becomes an array: copying the whole 800x800 RGBA canvas into
    numpy cost 4 of the 14 ms that reading and preprocessing an uploaded drawing took.
    """
    if not isinstance(im, Image.Image) or im.mode not in ("RGBA", "LA") or 0 in im.size:
        return None
    alpha = np.asarray(im.getchannel("A"))
    return alpha if _transparent_border(alpha) else None


def _ink_source(arr: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint8 image -> (2-D uint8 channel where ink is bright, background level, full-ink level).

    Ink strength is ``(channel - background) / (full - background)``, clipped to [0, 1].
    """
    if arr.ndim == 3 and arr.shape[-1] in (2, 4) and _transparent_border(arr[..., -1]):
        # Transparent canvas (Gradio's Sketchpad): whatever colour the brush had,
        # the ink is where the canvas stopped being transparent.
        return _shrink(arr[..., -1]), 0.0, 255.0
    gray = _shrink(_gray(arr))
    # Polarity: the background is the median brightness (ink covers a minority of the
    # pixels); the ink is whichever extreme lies further from it.
    step = max(1, max(gray.shape) // 256)
    bg = float(np.median(gray[::step, ::step]))
    lo, hi = float(gray.min()), float(gray.max())
    ink = np.invert(gray) if bg - lo > hi - bg else gray  # now the ink is brighter than the paper
    # Photos are lit unevenly: subtract the local background, not one global level.
    src = np.subtract(ink, _local_background(ink), dtype=np.int16)
    src = np.clip(src, 0, 255).astype(np.uint8)
    return src, 0.0, float(src.max())


def _local_background(ink: np.ndarray) -> np.ndarray:
    """Smooth estimate of the paper's level under bright ink: a coarse local minimum.

    On a 32 px thumbnail a minimum filter a third of the image wide removes every stroke
    narrower than that; a box blur smooths the blocks; the result is enlarged back.
    """
    h, w = ink.shape
    if max(h, w) < BACKGROUND_MIN_SIDE:  # too small to have lighting gradients: one level
        return np.full(ink.shape, np.median(ink), np.uint8)
    scale = BACKGROUND_GRID / max(h, w)
    thumb = Image.fromarray(np.ascontiguousarray(ink)).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    size = 2 * (BACKGROUND_GRID // 6) + 1
    thumb = thumb.filter(ImageFilter.MinFilter(size)).filter(ImageFilter.BoxBlur(size // 2))
    return np.asarray(thumb.resize((w, h), Image.Resampling.BILINEAR))


def _cut_noise(ink: np.ndarray) -> np.ndarray:
    """Zero ink below INK_THRESHOLD and stretch the rest back to [0, 1], keeping edges smooth."""
    return np.clip((ink - INK_THRESHOLD) * (1.0 / (1.0 - INK_THRESHOLD)), 0.0, 1.0)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) exclusive bounds of the True pixels, or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _resize(a: np.ndarray, height: int, width: int, resample: Image.Resampling) -> np.ndarray:
    """Resize a float32 2-D array with PIL (mode 'F')."""
    out = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32)).resize((width, height), resample)
    return np.asarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------- stroke width


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels of an ink map: 2 * ink mass / perimeter of the inked region.

    A stroke of length L and width w has mass L*w and a perimeter of about 2L. Using the
    mass, not a thresholded area, keeps sub-pixel strokes (a thin line shrunk to 80 px,
    grey rather than white) measurable.
    """
    b = ink > STROKE_MASK_LEVEL
    area = float(ink[b].sum())
    if area <= 0:
        return 0.0
    # Boundary length as the number of ink/background transitions, the frame included.
    padded = np.pad(b, 1)
    perimeter = int((padded[1:, :] != padded[:-1, :]).sum() + (padded[:, 1:] != padded[:, :-1]).sum())
    return 2.0 * area / max(perimeter, 1)


def normalize_stroke(ink: np.ndarray) -> np.ndarray:
    """Thicken strokes that are thin relative to the digit's size to MNIST's width.

    A big digit drawn with a small brush has strokes of ~1-2% of its size where MNIST's
    are ~10%: shrunk to 20 px they become faint hairlines the models misread. Such a
    stroke, grey once shrunk to the work size, is traced (ink > STROKE_MASK_LEVEL) and
    redrawn with a round brush: a binary dilation by a disk to STROKE_TARGET of the
    digit's size; the final anti-aliased resize softens its edges. Digits with normal
    strokes are returned untouched.
    """
    side = max(ink.shape)
    width = stroke_width(ink)
    if width <= 0 or width >= STROKE_THIN * side:
        return ink
    mask = ink > STROKE_MASK_LEVEL
    radius = (STROKE_TARGET * side - stroke_width(mask.astype(np.float32))) / 2  # dilation by r adds 2r
    if radius < 0.5:
        return ink
    return dilate_disk(mask, radius).astype(np.float32)


def dilate_disk(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary dilation of ``mask`` by a disk of ``radius``; the result is padded by ceil(radius).

    A disk is a stack of horizontal runs: each row offset dy contributes the mask dilated
    horizontally by sqrt(r^2 - dy^2), shifted by dy. Horizontal dilations come from one
    cumulative sum, so the cost is ~(3r) array passes, not r^2 (a conv2d took 5 ms here).
    """
    r = math.ceil(radius)
    h, w = mask.shape
    wide = w + 2 * r  # output width
    # Rows padded by r (the output's margin), columns by 2r so no window leaves the array.
    padded = np.pad(mask, ((r, r), (2 * r, 2 * r)))
    csum = np.zeros((h + 2 * r, w + 4 * r + 1), np.int32)
    np.cumsum(padded, axis=1, out=csum[:, 1:])
    runs: dict[int, np.ndarray] = {}
    out = np.zeros((h + 2 * r, wide), bool)
    for dy in range(-r, r + 1):
        reach = radius * radius + 0.5 - dy * dy
        if reach < 0:
            continue  # this row of the square holds no part of the disk
        half = int(math.isqrt(int(reach))) if reach >= 1 else 0
        if half not in runs:  # any ink within +-half columns of each output column
            runs[half] = (csum[:, r + half + 1 : r + half + 1 + wide] - csum[:, r - half : r - half + wide]) > 0
        run = runs[half]
        if dy >= 0:
            out[dy:] |= run[: h + 2 * r - dy]
        else:
            out[:dy] |= run[-dy:]
    return out


# ----------------------------------------------------------------------------- public API


def _fit_and_center(ink: np.ndarray) -> np.ndarray:
    """Cropped ink -> 28x28: fit into 20x20 keeping aspect, centre of mass at the centre."""
    h, w = ink.shape
    scale = DIGIT_BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.clip(_resize(ink, nh, nw, Image.Resampling.LANCZOS), 0.0, 1.0)  # LANCZOS rings below 0
    total = float(small.sum())
    if total <= 0:
        return np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    cy = float((small.sum(axis=1) * np.arange(nh)).sum()) / total
    cx = float((small.sum(axis=0) * np.arange(nw)).sum()) / total
    top, left = int(round(MNIST_CENTER - cy)), int(round(MNIST_CENTER - cx))
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    # Paste with clipping: a lopsided digit whose mass sits far from its box centre may
    # lose a sliver at the frame's edge, as it did when MNIST was made.
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + nh, MNIST_SIZE), min(left + nw, MNIST_SIZE)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = small[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def to_mnist_array(image: Any) -> np.ndarray | None:
    """Sketchpad value / pad payload / array / PIL image / image path -> (28, 28) float32 in [0, 1],
    white ink on black like MNIST; None for a blank canvas (no ink). Raises ImageError for non-images."""
    if isinstance(image, str) and (image == "" or image.startswith("data:")):  # the drawing pad ("" = blank)
        alpha = decode_pad_payload(image)
        return None if alpha is None else ink_to_mnist(alpha)
    im = _to_image(image)
    if im is None:
        return None
    alpha = _canvas_alpha(im)
    if alpha is not None:  # the common case, a drawing: see _ink_source
        src, background, full = _shrink(alpha), 0.0, 255.0
    else:
        arr = _to_uint8_array(im)
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            return None
        src, background, full = _ink_source(arr)
    return _ink_to_mnist(src, background, full)


def ink_to_mnist(ink: np.ndarray) -> np.ndarray | None:
    """A 2-D uint8 ink map (255 = full ink, e.g. the pad's alpha channel) -> (28, 28) float32, or None when blank."""
    return _ink_to_mnist(ink, 0.0, 255.0)


def _ink_to_mnist(src: np.ndarray, background: float, full: float) -> np.ndarray | None:
    """Steps 3-6 on a 2-D uint8 ink channel (ink strength (src - background) / (full - background))."""
    if full <= background:
        return None  # one flat colour: nothing drawn
    # Everything above stays uint8 on the whole canvas; floats only on the digit's crop.
    box = _bbox(src > background + INK_THRESHOLD * (full - background))
    if box is None:
        return None
    top, bottom, left, right = box
    ink = (src[top:bottom, left:right].astype(np.float32) - background) * (1.0 / (full - background))
    ink = _cut_noise(ink)
    side = max(ink.shape)
    if side > WORK_SIDE:
        # BOX = area averaging: anti-aliased and cheap for big reductions.
        h, w = ink.shape
        scale = WORK_SIDE / side
        ink = _resize(ink, max(1, round(h * scale)), max(1, round(w * scale)), Image.Resampling.BOX)
    ink = normalize_stroke(ink)
    return _fit_and_center(ink)


def to_tensor(seen: np.ndarray, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> torch.Tensor:
    """(28, 28) array in [0, 1] -> (1, 1, 28, 28) float tensor normalised with mean/std."""
    return ((torch.from_numpy(np.ascontiguousarray(seen, dtype=np.float32)) - mean) / std)[None, None]
