"""How small a change fools each model: the median L∞ that makes it read another digit, on drawn validation digits.

For each of ``--n`` drawn MNIST validation digits (``benchmarks.drawn.make_drawings``, split "val":
the images every run holds out, rendered as strokes on an 800x800 canvas and sent as the pad's
payload) and each model, ``digitnet.fool.fool`` searches the smallest L∞ change of the preprocessed
28x28 (0..1 pixel scale) that makes the model read another digit, the easiest one (PGD, bounds up
to ``MAX_LINF``). A digit it cannot change within ``MAX_LINF`` counts as needing more (infinite),
so the median stays honest. Also: the same over the digits the model read right, and the median
seconds of one search (with the load it was measured under; a timing, so noisy on a shared machine).

    nice -n 10 python -m benchmarks.fool                  # 200 digits x 3 models, a few minutes
    python -m benchmarks.fool --n 10 --json /tmp/fool.json

Writes ``benchmarks/results/fool.json`` (``python -m benchmarks.report`` puts it in the README).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

from benchmarks import record

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "benchmarks" / "results" / "fool.json"
DEFAULT_N = 200
SEED = 0  # the drawings' seed (make_drawings): the same 200 every time


def median(values: list[float]) -> float | None:
    """The median, infinite values included (a digit not fooled within the bound needs more); None if empty."""
    if not values:
        return None
    m = statistics.median(values)
    return None if math.isinf(m) else m


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=DEFAULT_N, help=f"drawn validation digits (default: {DEFAULT_N})")
    p.add_argument("--models", default="mlp,cnnnet,lenet", help="comma-separated (default: mlp,cnnnet,lenet)")
    p.add_argument("--data", default=None, help="MNIST root holding MNIST/raw/ (default: $DIGITNET_DATA or ./data)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the record (default: {DEFAULT_JSON})")
    args = p.parse_args(argv)

    import torch

    from benchmarks.drawn import make_drawings, pad_input
    from digitnet.fool import MAX_LINF, fool
    from digitnet.preprocess import to_mnist_array

    torch.set_num_threads(1)  # as the app's handlers run (predict.single_thread)
    header = record.start(argv)
    drawings = make_drawings(args.n, seed=SEED, data_root=args.data, split="val")
    seen = [(to_mnist_array(pad_input(d.canvas)), d.label) for d in drawings]
    seen = [(s, label) for s, label in seen if s is not None]
    report = {"n": len(seen), "split": "val", "drawings_seed": SEED, "max_linf": MAX_LINF, "models": {}}
    for name in args.models.split(","):
        linfs, right, seconds, targets = [], [], [], {}
        for image, label in seen:
            t0 = time.perf_counter()
            r = fool(image, name)
            seconds.append(time.perf_counter() - t0)
            linf = r.linf if r.fooled else math.inf
            linfs.append(linf)
            if r.original == label:
                right.append(linf)
            if r.fooled:
                targets[f"{r.original}->{r.label}"] = targets.get(f"{r.original}->{r.label}", 0) + 1
        report["models"][name] = {
            "median_linf": median(linfs), "median_linf_read_right": median(right), "read_right": len(right),
            "fooled": sum(not math.isinf(v) for v in linfs),
            "quartiles": [round(q, 4) for q in statistics.quantiles([min(v, 9.0) for v in linfs], n=4)],
            "median_seconds": statistics.median(seconds), "load": list(os.getloadavg()),
            "commonest": sorted(targets.items(), key=lambda kv: -kv[1])[:5]}
        m = report["models"][name]
        print(f"{name}: median L-inf {m['median_linf']}, {m['fooled']}/{len(seen)} fooled within {MAX_LINF}, "
              f"{m['median_seconds']:.2f} s a search; commonest {m['commonest'][:3]}", flush=True)
        record.write(args.json, header, report)  # after each model: a long run keeps what it made
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
