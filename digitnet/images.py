"""Reading what a visitor sends as a digit, safely: an upload confined to Gradio's folder for this
request, an image file decoded within a size cap (a big JPEG at a reduced size, EXIF rotation
applied), a Sketchpad value, an array, or the drawing pad's small PNG payload (decoded strictly).

``digitnet.preprocess`` turns what this reads into the 28x28 the models see, and re-exports the
public names here, so callers keep importing them from there. Pure: numpy, PIL and torch (never gradio).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import Refusal

# Inputs whose longer side exceeds this are first shrunk by an integer box reduction:
# an 800x800 Sketchpad canvas is never touched, a 5000x5000 photo shrinks 5x in ~ms.
MAX_INPUT_SIDE = 1024

# Image files that would decode to more pixels than this are refused before they are decoded:
# a drawing needs far fewer (the Sketchpad's canvas is 0.64 megapixels), and decoding costs
# ~40 ms a megapixel here, so one request stays well under a second. A JPEG is decoded at
# 1/2, 1/4 or 1/8 of its size when it is big (``Image.draft``), so a 12-megapixel phone photo
# decodes as 0.75 megapixels and fits; a 36-megapixel PNG (1.5 s, ~150 MB as RGBA) does not.
MAX_INPUT_PIXELS = 4_000_000

# The drawing pad's payload (see the module docstring). 112 = 4x MNIST's 28: the crop of a
# digit drawn at a fifth of the pad still has ~22 px to fit into the 20x20 box.
PAD_SIDE = 112
PAD_PREFIX = "data:image/png;base64,"
# A 112x112 drawing's PNG is 1-4 kB (a scribble over the whole pad ~8 kB; raw RGBA in base64
# ~67 kB); anything longer is not from the pad and is refused before it is decoded.
PAD_MAX_CHARS = 200_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Longer strings cannot be file paths (Linux's PATH_MAX is 4096); refusing them early keeps a
# huge junk string from reaching the file system as a path.
MAX_PATH_CHARS = 4096
EXIF_ORIENTATION = 274  # the EXIF tag of a photo's rotation; 1 = upright


class ImageError(Refusal, ValueError):
    """The input is not an image (or a Sketchpad value holding one); its ``reason`` says why."""


# The one answer to every file reference a request may not give (a path of its own choosing, a
# file Gradio did not upload, a missing one): the same words whatever the path, so the answer
# tells nothing about which files the server has.
UPLOAD_REFUSED = ("only a file uploaded with this request can be read: send the image itself (gradio_client: "
                  "handle_file(...)) or a drawing, never a path")
FILE_DATA_TYPE = "gradio.FileData"  # the ``meta._type`` of a file that Gradio uploaded (and checked)
SKETCH_PARTS = ("background", "layers", "composite")


def uploaded_path(path: Any, folder: str | os.PathLike) -> Path:
    """``path`` resolved, if it names a regular file inside ``folder`` (the upload folder); else
    ImageError(UPLOAD_REFUSED). Symbolic links and ``..`` are resolved before the check."""
    try:
        if not isinstance(path, (str, os.PathLike)) or len(os.fspath(path)) > MAX_PATH_CHARS:
            raise ValueError
        real = Path(os.path.realpath(path))
        root = Path(os.path.realpath(folder))
        if real == root or root not in real.parents or not real.is_file():
            raise ValueError
    except (OSError, ValueError, TypeError):
        raise ImageError.because("image.not_uploaded", UPLOAD_REFUSED) from None
    return real


def uploaded_file(value: Any, folder: str | os.PathLike) -> Path:
    """The file of a FileData dict Gradio uploaded for this request (``meta._type`` gradio.FileData, its
    ``path`` inside ``folder``); ImageError(UPLOAD_REFUSED) for anything else, a bare path included."""
    meta = value.get("meta") if isinstance(value, dict) else None
    if not isinstance(meta, dict) or meta.get("_type") != FILE_DATA_TYPE:
        raise ImageError.because("image.not_uploaded", UPLOAD_REFUSED)
    return uploaded_path(value.get("path"), folder)


def confine_uploads(value: Any, folder: str | os.PathLike) -> Any:
    """A request's image value with every file reference checked by ``uploaded_file`` (and replaced by its
    path): a Sketchpad dict's parts, or one uploaded image. A pad payload ("data:...") and None pass as
    they are; any other string (a path) is refused. What an API handler calls before ``to_mnist_array``."""
    if value is None or is_pad_payload(value) or value == "":
        return value
    if isinstance(value, dict) and not any(value.get(part) for part in SKETCH_PARTS):
        if "path" in value or "meta" in value:
            return uploaded_file(value, folder)  # one uploaded image, not a drawing
        return {part: None for part in SKETCH_PARTS}  # nothing drawn
    if isinstance(value, dict):
        def check(part: Any) -> Path | None:
            return None if part is None else uploaded_file(part, folder)

        return {"background": check(value.get("background")),
                "layers": [check(layer) for layer in (value.get("layers") or [])],
                "composite": check(value.get("composite"))}
    raise ImageError.because("image.not_uploaded", UPLOAD_REFUSED)


# ----------------------------------------------------------------------------- reading


def _open_path(path: str | os.PathLike) -> Image.Image:
    """Open an image file, loading JPEGs at reduced size when they are huge."""
    if isinstance(path, str) and (len(path) > MAX_PATH_CHARS or "\0" in path):
        raise ImageError.because("image.long_string", "not an image: a string of {length:,} characters that is "
                                 "neither a file path nor a drawing from the pad ({prefix}...)",
                                 length=len(path), prefix=PAD_PREFIX)
    p = Path(path)
    try:
        exists = p.is_file()
    except (OSError, ValueError):  # a name too long for the file system, and the like
        exists = False
    if not exists:
        raise ImageError.because("image.missing", "image file {path} does not exist", path=str(p)[:200])
    try:
        im = Image.open(p)  # reads the header only
    except Image.DecompressionBombError as exc:  # over twice PIL's own limit
        raise ImageError.because("image.bomb", "{name} is too large: at most {limit} megapixels",
                                 name=p.name, limit=MAX_INPUT_PIXELS // 1_000_000) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError.because("image.not_image", "{name} is not an image file that can be read: use a PNG, "
                                 "JPEG or WebP", name=p.name) from exc
    width, height = im.size
    try:
        # JPEG can decode at 1/2, 1/4, 1/8 size directly: a 24-megapixel photo loads in ms.
        im.draft(None, (MAX_INPUT_SIDE, MAX_INPUT_SIDE))
    except (OSError, ValueError) as exc:
        im.close()
        raise ImageError.because("image.undecodable", "{name} is not an image file that can be read ({error})",
                                 name=p.name, error=str(exc)) from exc
    if im.width * im.height > MAX_INPUT_PIXELS:  # what would be decoded: JPEG's reduced size
        im.close()
        raise ImageError.because("image.too_big", "{name} is {width}x{height} pixels: at most {limit} megapixels, "
                                 "please shrink it", name=p.name, width=width, height=height,
                                 limit=MAX_INPUT_PIXELS // 1_000_000)
    try:
        im.load()
        # A phone photo stores its rotation in EXIF: turned upright, as Gradio's image component did.
        im = ImageOps.exif_transpose(im) if im.getexif().get(EXIF_ORIENTATION, 1) != 1 else im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError.because("image.undecodable", "{name} is not an image file that can be read ({error})",
                                 name=p.name, error=str(exc)) from exc
    return im


def _array_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Any numeric array -> uint8 in 0..255 (floats in [0, 1] or [0, 255], ints, bools)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageError.because("image.dtype", "cannot read an image from an array of dtype {dtype}", dtype=arr.dtype)
    a = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(a.max()) if a.size else 0.0
    if np.issubdtype(arr.dtype, np.floating):
        scale = 255.0 if top <= 1.0 else 1.0  # floats in [0, 1], else already 0..255
    elif top <= 255:
        scale = 1.0
    else:  # 16-bit scans and the like
        scale = 255.0 / (65535.0 if top <= 65535 else top)
    return np.clip(a * scale + 0.5, 0, 255).astype(np.uint8)


def _normalize_array(arr: Any) -> np.ndarray:
    """HxW, HxWxC or CxHxW (C in 1..4) array of any numeric dtype -> uint8 HxW or HxWxC (C in 2..4)."""
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    try:
        arr = np.asarray(arr)
    except Exception as exc:
        raise ImageError.because("image.object", "cannot read an image from {kind}: {error}",
                                 kind=type(arr).__name__, error=str(exc)) from exc
    while arr.ndim > 3 and arr.shape[0] == 1:  # (1, 1, H, W) tensors and the like
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 2, 3, 4) and arr.shape[-1] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channel-first -> channel-last
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (2, 3, 4)) or arr.size == 0:
        raise ImageError.because("image.shape", "cannot read an image from an array of shape {shape}", shape=arr.shape)
    return _array_to_uint8(arr)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, bytes)) and not value)


def _file_data_path(value: Any) -> Any:
    """Gradio FileData-like dicts ({"path": ..., "url": ...}) -> their path."""
    if isinstance(value, dict) and "path" in value and not {"background", "layers", "composite"} & value.keys():
        return value.get("path")
    return value


def _sketch_to_image(value: dict) -> Image.Image | None:
    """A Sketchpad/ImageEditor value -> its composite image, or None when nothing is on it."""
    composite = _file_data_path(value.get("composite"))
    if not _is_empty(composite):
        return _to_image(composite)
    # An untouched canvas has no composite; if layers or a background came without it,
    # compose them ourselves (background at the bottom, layers in order).
    parts = [_file_data_path(value.get("background"))] + [_file_data_path(v) for v in (value.get("layers") or [])]
    images = [_to_image(p) for p in parts if not _is_empty(p)]
    images = [im if isinstance(im, Image.Image) else Image.fromarray(np.ascontiguousarray(im)) for im in images if im is not None]
    if not images:
        return None
    base = images[0].convert("RGBA")
    for layer in images[1:]:
        layer = layer.convert("RGBA")
        if layer.size != base.size:
            layer = layer.resize(base.size, Image.Resampling.BILINEAR)
        base = Image.alpha_composite(base, layer)
    return base


def _to_image(image: Any) -> Image.Image | np.ndarray | None:
    """Whatever the caller passed -> a PIL image or uint8 array (not yet shrunk), or None."""
    if image is None:
        return None
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, dict):
        if {"background", "layers", "composite"} & image.keys():
            return _sketch_to_image(image)
        if "path" in image:
            return _to_image(image["path"])
        raise ImageError.because("image.dict", "cannot read an image from a dict with keys {keys}", keys=sorted(image))
    if isinstance(image, (str, os.PathLike)):
        return _open_path(image)
    if isinstance(image, (bytes, bytearray)):
        raise ImageError.because("image.bytes", "cannot read an image from raw bytes; pass a path, array or PIL image")
    return _normalize_array(image)


def _to_uint8_array(im: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image or array -> uint8 array (H, W), (H, W, 2) grey+alpha, (H, W, 3) or (H, W, 4)."""
    if isinstance(im, Image.Image):
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            return _normalize_array(np.asarray(im))
        if im.mode == "1":
            im = im.convert("L")
        elif im.mode in ("PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
        elif im.mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV
        return np.asarray(im)
    return im


# ----------------------------------------------------------------------------- the drawing pad


def is_pad_payload(value: Any) -> bool:
    """Whether ``value`` is (or claims to be) a drawing pad payload: a str with the PNG data URL prefix."""
    return isinstance(value, str) and value.startswith(PAD_PREFIX)


def check_pad_value(value: Any) -> str:
    """``value`` itself if it is "" (blank pad) or a pad payload; else ImageError.

    A pad event's value is a plain string from the browser: read as anything else (a file
    path, say), a visitor could make the server open files. Call this before ``predict``.
    """
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ImageError.because("pad.not_text", "the drawing pad sends a string, not {kind}", kind=type(value).__name__)
    if len(value) > PAD_MAX_CHARS:
        raise ImageError.because("pad.too_long", "the drawing is {length:,} characters long; a pad drawing has at most "
                                 "{limit:,}", length=len(value), limit=PAD_MAX_CHARS)
    if not is_pad_payload(value):
        raise ImageError.because("pad.not_payload", "not a drawing from the pad: it sends a PNG data URL ({prefix}...) "
                                 "or \"\"", prefix=PAD_PREFIX)
    return value


def decode_pad_payload(value: Any) -> np.ndarray | None:
    """A pad payload -> its ink, a (PAD_SIDE, PAD_SIDE) uint8 array (255 = full ink); None for "".

    Strict, because the string comes from a browser: ImageError (never another exception)
    for anything longer than PAD_MAX_CHARS, not base64, not a PNG, not PAD_SIDE square, or
    without an alpha channel.
    """
    if check_pad_value(value) == "":
        return None
    try:
        data = base64.b64decode(value[len(PAD_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII characters
        raise ImageError.because("pad.not_base64", "the drawing is not valid base64 ({error})", error=str(exc)) from exc
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
        raise ImageError.because("pad.not_png", "the drawing is not a PNG image")
    # The size from the PNG header (IHDR: width, height as big-endian uint32), checked before PIL
    # sees the data: a 10000x10000 PNG of zeros is a few kB and must not be decoded.
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if (width, height) != (PAD_SIDE, PAD_SIDE):
        raise ImageError.because("pad.size", "the drawing is {width}x{height} pixels; the pad sends {side}x{side}",
                                 width=width, height=height, side=PAD_SIDE)
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            im.load()
            if im.mode == "P" or "transparency" in im.info:
                im = im.convert("RGBA")
            if "A" not in im.getbands():
                raise ImageError.because("pad.no_alpha", "the drawing has no alpha channel (PNG mode {mode}); the pad's "
                                         "ink is its alpha", mode=im.mode)
            alpha = np.asarray(im.getchannel("A"))
    except ImageError:
        raise
    except Exception as exc:  # a corrupt or hostile PNG: PIL raises OSError, SyntaxError, zlib.error, ...
        raise ImageError.because("pad.undecodable", "the drawing's PNG cannot be decoded ({kind}: {error})",
                                 kind=type(exc).__name__, error=str(exc)) from exc
    if alpha.dtype != np.uint8:  # a 16-bit PNG's alpha
        alpha = _normalize_array(alpha)
    return alpha


def pad_payload(ink: Any) -> str:
    """Ink (2-D array, 255 = full ink, any size; e.g. a Sketchpad canvas's alpha) -> the pad's payload.

    Area-averages the ink to PAD_SIDE x PAD_SIDE, as the pad's anti-aliased rendering of the
    same strokes does, and encodes it as the browser does (RGBA PNG, ink in alpha, RGB 0);
    "" when there is no ink. For tests, benchmarks and API callers that want the pad's format.
    """
    arr = _normalize_array(ink)
    if arr.ndim != 2:
        raise ImageError.because("image.not_2d", "pad_payload takes a 2-D ink array, not shape {shape}", shape=arr.shape)
    if not arr.any():
        return ""
    alpha = Image.fromarray(np.ascontiguousarray(arr)).resize((PAD_SIDE, PAD_SIDE), Image.Resampling.BOX)
    rgba = Image.new("RGBA", alpha.size, (0, 0, 0, 0))
    rgba.putalpha(alpha)
    out = io.BytesIO()
    rgba.save(out, format="PNG", optimize=False)
    return PAD_PREFIX + base64.b64encode(out.getvalue()).decode("ascii")
