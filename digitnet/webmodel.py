"""A checkpoint as the page runs it: a small JSON spec for ``digitnet/ui/static/digitnet-core.js``.

The page computes the answer itself (``DigitNet.model(spec).run(x)``), with the weights this
visitor draws with. ``page_model(ckpt)`` turns a checkpoint dict (the format of
``digitnet.checkpoint``) into what the page needs, and nothing else:

- ``arch``, ``mean``/``std`` (the input normalisation), ``temperature`` (the checkpoint's, as
  ``digitnet.predict`` uses it) and ``unsure_below`` (``digitnet.predict.UNSURE_BELOW``);
- ``layers``: each conv or linear layer in order, with BatchNorm folded in (eval mode: a
  per-channel affine map, so ``conv -> bn`` is one conv with scaled weights and a shifted bias,
  and pooling after it sees the same numbers), with what follows it (2x2 max pool, ReLU).

Weights travel as **fixed-point integers of WEIGHT_BITS bits, one scale per output row** (a
conv's output channel, a linear layer's output unit), bit-packed, base64. Why not float32: the
three shipped models hold 389,070 weights; as float32 they are 1.56 MB, 2.08 MB in base64, over
the page's 1.5 MB budget, and they do not compress (a float's low mantissa bytes are noise:
zlib keeps 84%). Why not float16 (11 significant bits): measured on 3,000 MNIST test digits,
it moves LeNet's probabilities by up to 2.2e-3 and its logits by 1e-2, far from the 1e-4
the page must hold. Bits per weight against the largest deviation from PyTorch's float32
forward pass over those digits (probabilities / logits / hidden layers, worst model):

    bits   probs     logits    layers   the three specs as JSON
    18     3.6e-05   2.5e-04   1.7e-04  1.18 MB
    20     9.8e-06   7.3e-05   5.7e-05  1.31 MB
    22     2.4e-06   2.2e-05   1.7e-05  1.44 MB
    32     1.9e-06   1.0e-05   6.1e-06  2.08 MB  (float32: PyTorch's own rounding)

22 bits keep every figure 4x or more inside 1e-4 and the three models under 1.5 MB.
``page_model(ckpt, bits=32)`` sends exact float32 where size does not matter. Biases and
row scales are float32 (a few kB).

Pure: numpy and torch, never gradio.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .detector import build_detector
from .models import MODELS, PageLayer, RegistryField, check_model_name
from .predict import UNSURE_BELOW

SPEC_FORMAT = "digitnet-page-model"
SPEC_VERSION = 1
WEIGHT_BITS = 22  # see the module docstring: 4x inside 1e-4, three models <= 1.5 MB
FLOAT_BITS = 32  # bits=32: plain little-endian float32, exact
MIN_BITS, MAX_BITS = 8, 24  # fixed point beyond 24 bits gains nothing over float32
BN_EPS = 1e-5  # nn.BatchNorm1d/2d's default eps, which every model uses

# Each model's layers in forward order, and where each hidden layer's output comes from in the PyTorch
# model (what ``DigitNet.model(spec).run(x).layers`` holds): its registry entry's page_layers and
# page_probes (models.py). tests/test_webmodel.py checks every layer's shape against the state_dict
# and tests/e2e/test_inpage_math.py every output.
LAYERS: Mapping[str, tuple[PageLayer, ...]] = RegistryField("page_layers")
PROBES: Mapping[str, dict[str, str]] = RegistryField("page_probes")


def torch_layer_outputs(model: torch.nn.Module, arch: str, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(logits, {layer name: output after ReLU}) of a PyTorch model in eval mode on normalised ``x``:
    the reference the page's ``layers`` are tested against."""
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[module].register_forward_hook(
        lambda _m, _i, out, name=name: seen.__setitem__(name, torch.relu(out.detach())))
        for name, module in PROBES[check_model_name(arch)].items()]
    try:
        with torch.inference_mode():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, seen


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _float32(values: np.ndarray) -> dict:
    """Exact little-endian float32, base64."""
    return {"encoding": "f32", "data": _b64(np.asarray(values, dtype="<f4").ravel())}


def _fixed_point(weight: np.ndarray, bits: int) -> dict:
    """Per output row: ``w ~ q * scale`` with integer q in [-M, M], M = 2**(bits-1) - 1, bit-packed.

    Packing: each q is stored as q + M (an unsigned ``bits``-bit number), least significant bit
    first, one value after another in a little-endian bit stream; the page reads it back the same way.
    """
    rows = weight.reshape(weight.shape[0], -1).astype(np.float64)
    top = 2 ** (bits - 1) - 1
    scale = (np.abs(rows).max(axis=1) / top).astype(np.float32)  # stored as float32: use that value
    safe = np.where(scale > 0, scale, 1.0).astype(np.float64)[:, None]
    q = np.clip(np.rint(rows / safe), -top, top).astype(np.int64)
    unsigned = (q + top).astype("<u4").ravel()
    # Each value's 32 bits, least significant first; keep the low ``bits`` and pack them back to bytes.
    bit_matrix = np.unpackbits(unsigned.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")[:, :bits]
    packed = np.packbits(bit_matrix.ravel(), bitorder="little")
    return {"encoding": "fixed", "bits": bits, "scale": _b64(scale.astype("<f4")), "data": _b64(packed)}


def _folded(state: dict[str, torch.Tensor], name: str, bn: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of layer ``name`` in float64, with BatchNorm ``bn`` (eval mode) folded in."""
    weight = state[f"{name}.weight"].detach().cpu().double()
    bias = state[f"{name}.bias"].detach().cpu().double()
    if bn is not None:
        scale = state[f"{bn}.weight"].double() / torch.sqrt(state[f"{bn}.running_var"].double() + BN_EPS)
        weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
        bias = (bias - state[f"{bn}.running_mean"].double()) * scale + state[f"{bn}.bias"].double()
    return weight.numpy(), bias.numpy()


def _metrics(ckpt: dict) -> dict[str, float]:
    """The checkpoint's scalar metrics (test_acc, ...): the history and confusion matrix stay behind."""
    out = {}
    for key, value in (ckpt.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[str(key)] = float(value)
    return out


def page_detector(ckpt: dict, bits: int = WEIGHT_BITS) -> dict:
    """The not-a-digit detector's checkpoint (``digitnet.detector``: LeNet with one output) as a page spec:
    ``DigitNet.model(spec).run(x).logits[0]`` is its logit, flagged when sigmoid > ``not_digit_above``."""
    spec = page_model(ckpt, bits, reference=build_detector().state_dict())
    spec.update(outputs=1, not_digit_above=float(ckpt["not_digit_above"]))
    return spec


def page_model(ckpt: dict, bits: int = WEIGHT_BITS, unsure_below: float = UNSURE_BELOW,
               reference: dict | None = None) -> dict:
    """A checkpoint dict -> the JSON-able spec ``DigitNet.model(spec)`` runs in the page.

    ``bits``: WEIGHT_BITS fixed point (default, see the module docstring) or 32 for exact float32.
    ValueError for an unknown architecture, a state_dict that does not fit it, or bad ``bits``.
    """
    arch = check_model_name(ckpt.get("arch"))
    if bits != FLOAT_BITS and not (MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(f"bits must be {FLOAT_BITS} (float32) or {MIN_BITS}..{MAX_BITS} (fixed point), got {bits}")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError("the checkpoint has no state_dict")
    reference = MODELS[arch]().state_dict() if reference is None else reference
    for key, tensor in reference.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key not in state or tuple(state[key].shape) != tuple(tensor.shape):
            found = tuple(state[key].shape) if key in state else "nothing"
            raise ValueError(f"the {arch} checkpoint's {key} should have shape {tuple(tensor.shape)}, not {found}")
    layers = []
    for name, kind, bn, padding, pool, relu in LAYERS[arch]:
        weight, bias = _folded(state, name, bn)
        layer: dict[str, Any] = {"name": name, "kind": kind, "relu": relu}
        if kind == "conv":
            out_channels, in_channels, kernel, _ = weight.shape
            layer.update(in_channels=int(in_channels), out_channels=int(out_channels), kernel=int(kernel),
                         padding=padding, pool=2 if pool else 1)
        else:
            out_features, in_features = weight.shape
            layer.update(in_features=int(in_features), out_features=int(out_features))
        layer["weight"] = _float32(weight) if bits == FLOAT_BITS else _fixed_point(weight, bits)
        layer["bias"] = _float32(bias)
        layers.append(layer)
    return {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "arch": arch,
        "mean": float(ckpt["mean"]),
        "std": float(ckpt["std"]),
        "temperature": float(ckpt.get("temperature", 1.0)),
        "unsure_below": float(unsure_below),
        "metrics": _metrics(ckpt),
        "layers": layers,
    }


def decode_layer(layer: dict) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of one spec layer as float64 arrays, read back as the page reads them (for tests)."""
    if layer["kind"] == "conv":
        shape = (layer["out_channels"], layer["in_channels"], layer["kernel"], layer["kernel"])
    else:
        shape = (layer["out_features"], layer["in_features"])
    enc = layer["weight"]
    if enc["encoding"] == "f32":
        weight = np.frombuffer(base64.b64decode(enc["data"]), "<f4").astype(np.float64)
    else:
        bits, count = enc["bits"], int(np.prod(shape))
        stream = np.unpackbits(np.frombuffer(base64.b64decode(enc["data"]), np.uint8), bitorder="little")
        unsigned = (stream[: count * bits].reshape(count, bits).astype(np.int64) << np.arange(bits)).sum(axis=1)
        scale = np.frombuffer(base64.b64decode(enc["scale"]), "<f4").astype(np.float64)
        weight = (unsigned - (2 ** (bits - 1) - 1)).reshape(shape[0], -1) * scale[:, None]
    bias = np.frombuffer(base64.b64decode(layer["bias"]["data"]), "<f4").astype(np.float64)
    return weight.reshape(shape), bias


# page_model of the same checkpoint dict is asked for on every page load; a spec costs ~20 ms
# (the MLP's 235,200 weights). Keyed by the dict's identity, which the entry keeps alive: the
# model cache and a visitor's runs replace checkpoint dicts, never change them.
_SPECS: dict[tuple[int, int], tuple[dict, dict]] = {}
_SPECS_MAX = 64
_SPECS_LOCK = threading.Lock()


def cached_page_model(ckpt: dict, bits: int = WEIGHT_BITS) -> dict:
    """``page_model(ckpt, bits)``, computed once per checkpoint dict (treat the result as read-only)."""
    key = (id(ckpt), bits)
    with _SPECS_LOCK:
        hit = _SPECS.get(key)
        if hit is not None and hit[0] is ckpt:
            return hit[1]
    spec = page_model(ckpt, bits)
    with _SPECS_LOCK:
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.pop(next(iter(_SPECS)))  # the oldest entry
        _SPECS[key] = (ckpt, spec)
    return spec


def page_models(source: Any = None, bits: int = WEIGHT_BITS) -> dict[str, dict]:
    """Every model's spec, from whatever has ``get(name) -> (model, ckpt)``.

    ``source``: ``digitnet.predict.CACHE`` (the shipped weights; the default) or a visitor's
    ``Workspace`` (the weights they draw with). A model that cannot be loaded maps to
    ``{"arch": name, "error": message}`` so the page can say why it has no answer.
    """
    if source is None:
        from .predict import CACHE  # noqa: PLC0415

        source = CACHE
    out = {}
    for name in MODELS:
        try:
            _, ckpt = source.get(name)
            out[name] = cached_page_model(ckpt, bits)
        except Exception as exc:  # ModelUnavailable, a broken upload: reported, never raised into the page
            out[name] = {"arch": name, "error": str(exc)}
    return out
