"""The README's figures table, written from the benchmark records (benchmarks/results/*.json).

Every figure the README gives has one source: a JSON record a benchmark wrote. This writes the
table between the README's ``<!-- figures -->`` and ``<!-- /figures -->`` markers from those
records, so that a figure cannot be typed in by hand or go stale beside its record:

    python -m benchmarks.report            # rewrite the README's table from the records
    python -m benchmarks.report --check    # exit 1 (and show the difference) when they disagree
    python -m benchmarks.report --print    # the table on stdout

The test suite runs ``--check`` (tests/test_report.py). Each row names its command and its
RESULTS file (what is measured, how, and the history); the date is the record's.
"""

from __future__ import annotations

import argparse
import difflib
import json
import statistics
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- figures -->", "<!-- /figures -->"
HEADER = "| what | figure | command (details; record's date) |\n| --- | --- | --- |"
MODELS = ("mlp", "cnnnet", "lenet")
NAMES = {"mlp": "MLP", "cnnnet": "CNNNet", "lenet": "LeNet"}


def load(name: str, folder: Path = RESULTS) -> dict | None:
    """A record by file name (``speed`` -> speed.json), None when it is missing."""
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def date_of(rec: dict) -> str:
    """The record's date (``record.date``; older records kept theirs at the top level)."""
    header = rec.get("record") or {}
    date = header.get("date") or rec.get("date")
    return str(date)[:10] if date else "undated"


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def three(values: dict, digits: int = 1) -> str:
    """'98.7 / 99.0 / 98.9%' for MLP / CNNNet / LeNet."""
    return " / ".join(f"{100 * values[m]:.{digits}f}" for m in MODELS) + "%"


# ---- one function per row: record(s) -> (what, figure) -------------------------------------------------------------

def browser_latency(rec: dict) -> tuple[str, str]:
    paths = rec["paths"]
    page, server = paths["page"], paths.get("server")
    load = rec.get("load", {}).get("before") or rec["record"]["machine"].get("load_before") or [0]
    what = (f"pointer move to updated answer (all three models), {rec['n']} digits in headless Chromium, load "
            f"{load[0]:.0f}: the page's own reading" + ("; the server pad it replaced, same run" if server else ""))
    figure = (f"median {page['median_ms']:,.1f} ms, p95 {page['p95_ms']:,.1f} ms, "
              f"{page['queue_joins_while_drawing']} requests while drawing")
    if server:
        figure += (f"; {server['median_ms']:,.0f} ms, {server['p95_ms']:,.0f} ms, "
                   f"{server['queue_joins_while_drawing']} requests")
    return what, figure


def drawn(rec: dict) -> tuple[str, str]:
    split = "test" if rec.get("split", "test") == "test" else "validation"
    return (f"{rec['n']:,} drawn MNIST {split} digits, MLP / CNNNet / LeNet, through the pad's payload",
            three(rec["pad_payload"]))


def calibration(rec: dict) -> tuple[str, str]:
    # the threshold the rule chose on drawn validation digits (digitnet.predict.UNSURE_BELOW is it: tested)
    lenet, threshold = rec["models"]["lenet"], rec["chosen"]
    row = next(r for r in rec["mean_table"] if r["threshold"] == threshold)
    what = (f"calibration error on drawn test digits before → after temperature scaling (LeNet); \"not sure\" "
            f"below {threshold:g}, chosen on drawn validation digits; what it flags of drawn test digits")
    figure = (f"{pct(lenet['drawn_ece_before'], 2)} → {pct(lenet['drawn_ece_after'], 2)}; flags "
              f"{pct(row['correct_flagged'])} of correct digits, {pct(row['non_digits'], 0)} of non-digits")
    return what, figure


def speed(rec: dict) -> tuple[str, str]:
    m = rec["models"]
    parts = []
    if "lenet" in m:
        e = m["lenet"]
        parts.append(f"LeNet {e['digitnet_time_to_target']['median']:.1f} s / {e['seed_epoch_seconds']['median']:.1f} s "
                     f"({e['time_to_target_vs_seed_epoch']['median']:.2f})")
    if "cnnnet" in m and m["cnnnet"].get("time_to_target_vs_seed_lenet_epoch"):
        e = m["cnnnet"]
        parts.append(f"CNNNet {e['digitnet_time_to_target']['median']:.1f} s "
                     f"({e['time_to_target_vs_seed_lenet_epoch']['median']:.2f} of a seed LeNet epoch)")
    if "mlp" in m:
        e = m["mlp"]
        parts.append(f"MLP {e['digitnet_time_to_target']['median']:.1f} s / {e['seed_epoch_seconds']['median']:.1f} s "
                     f"({e['time_to_target_vs_seed_epoch']['median']:.2f})")
    figure = ", ".join(parts)
    if rec.get("process"):
        p = rec["process"]
        figure += (f"; the whole LeNet command line {p['ratio']['median']:.2f} of the seed's process "
                   f"({p['ratio']['min']:.2f}-{p['ratio']['max']:.2f}, {len(p['pairs'])} pairs)")
    load = rec.get("record", {}).get("machine", {}).get("load_before") or rec.get("load_average_start")
    if load:
        figure += f"; load {load[0]:.1f}"
    return ("time to 99% with the fast recipe (the MLP to 98%) / one epoch of the seed article's recipe", figure)


def seeds(recs: dict[str, dict]) -> tuple[str, str]:
    parts = []
    for m in ("lenet", "cnnnet", "mlp"):
        r = recs.get(m)
        if r is None:
            continue
        n = len(r["runs"])
        parts.append(f"{NAMES[m]} {100 * r['test_mean']:.2f} ± {100 * r['test_std']:.2f}% (lowest "
                     f"{100 * r['test_min']:.2f}, {r['test_at_target']}/{n} ≥ {100 * r['target']:.0f}%; "
                     f"validation {100 * r['val_mean']:.2f}%)")
    first = next(iter(recs.values()))
    seeds_ = [r["seed"] for r in first["runs"]]
    span = f"{seeds_[0]}-{seeds_[-1]}" if seeds_ == list(range(seeds_[0], seeds_[-1] + 1)) else ",".join(map(str, seeds_))
    return (f"test accuracy of the fast recipe over seeds {span}, two threads as the command line runs it "
            "(chosen on validation)", "; ".join(parts))


def app_train(rec: dict) -> tuple[str, str]:
    parts = []
    for m in ("lenet", "cnnnet", "mlp"):
        s = rec["summary"].get(m)
        if s is None:
            continue
        accs = [r["test_acc"] for r in rec["runs"] if r["model"] == m and r["state"] == "done"]
        parts.append(f"{NAMES[m]} {pct(statistics.median(accs), 2)} in {s['median_seconds']:.1f} s")
    return "a visitor's Train click with the fast recipe, while the app serves", ", ".join(parts)


def visitors(rec: dict) -> tuple[str, str]:
    loads, drawers = rec["page_loads"], rec["drawers"]
    runs = rec["runs"]
    done = sum(r.get("state") == "done" for r in runs)
    load = rec.get("load", {}).get("before") or [0]
    what = (f"page loads ({loads['concurrency']} at once); server CPU while {drawers['drawers']} visitors draw and "
            f"click Explain; {len(runs)} runs queued beside them (load {load[0]:.0f}; the emulated visitors run on the "
            "server's own 2 cores)")
    figure = (f"{loads['loads_per_s']:.1f}/s, p95 {loads['p95_ms'] / 1000:.1f} s; {100 * rec['server_cpu_while_drawing']:.1f}% "
              f"of one core; {done} of {len(runs)} runs finished; errors {loads['errors'] + drawers['errors']}")
    for key, name in (("estimate_over_wait", "start estimates"), ("countdown_over_rest", "countdowns while waiting")):
        ratios = [r[key] for r in runs if key in r]  # a queued run's estimate against the wait it had
        if ratios:
            figure += (f"; {name} {min(ratios):.2f}-{max(ratios):.2f}x the waits, "
                       f"{sum(0.5 <= x <= 1.5 for x in ratios)} of {len(ratios)} within ±50%")
    return what, figure


def inpage(rec: dict) -> tuple[str, str]:
    same = {m: v["same_answer"] for m, v in rec["models"].items()}
    what = (f"{rec['n']:,} drawn digits read in the page (headless Chromium) against the server: identical "
            "28x28s; same answer MLP / CNNNet / LeNet; the page's frame (preprocessing + 3 models) / the server's")
    figure = (f"{rec['identical_28x28']:,} of {rec['n']:,}; {three(same, 1)}; median {rec['frame_ms']['median']:.1f} ms / "
              f"{rec['server_predict_all_ms']['median']:.1f} ms")
    return what, figure


def flood(rec: dict) -> tuple[str, str]:
    lat = rec["latency"]
    idle, worst = lat["idle"]["median_ms"], max(v["median_ms"] for k, v in lat.items() if k != "idle")
    what = "another visitor's /predict while one session floods the queue (4 events a session at most)"
    errors = sum(v.get("errors", 0) for v in lat.values())
    return what, f"median {idle:,.0f} ms idle → {worst:,.0f} ms flooded ({worst / idle:.1f}x), {errors} errors"


def notdigit(rec: dict) -> tuple[str, str]:
    det = rec["candidates"]["detector"]["test"]
    sure = [rec["candidates"][f"{m}: not sure"]["test"]["all non-digits"] for m in MODELS]
    what = ("\"that doesn't look like a digit\" on generated test letters, scribbles, shapes and two-digit numbers "
            "(threshold chosen on validation); drawn test digits flagged; the old \"not sure\" rule on the same")
    figure = (f"{pct(det['all non-digits'])} flagged (scribbles {pct(det['scribble'], 0)}); {pct(det['digits'])} of digits; "
              f"{' / '.join(f'{100 * x:.0f}' for x in sure)}%")
    return what, figure


def fool(rec: dict) -> tuple[str, str]:
    m = rec["models"]
    what = (f"\"Fool it\": the smallest change (L∞, 0..1 pixel scale) that makes a model read another digit, "
            f"median over {rec['n']} drawn validation digits, MLP / CNNNet / LeNet")
    fooled = " / ".join(str(m[k]["fooled"]) for k in MODELS if k in m)
    figure = (" / ".join("–" if m[k]["median_linf"] is None else f"{m[k]['median_linf']:.3f}" for k in MODELS if k in m)
              + f" ({fooled} of {rec['n']} changed within {rec['max_linf']:g})")
    return what, figure


def _thousands(images: float | None) -> str:
    return "never" if images is None else f"{images / 1000:.0f}k"


def seed_mistakes(rec: dict) -> tuple[str, str]:
    parts = []
    for m in ("lenet", "cnnnet", "mlp"):
        if m not in rec["models"]:
            continue
        s = rec["models"][m]["summary"]
        plain, soft, flip = s["none"], s["softmax_before_loss"], s["hflip"]
        seconds = " / ".join("–" if v["seconds_to_target"] is None else f"{v['seconds_to_target']:.0f}"
                             for v in (plain, soft, flip))
        parts.append(f"{NAMES[m]} {pct(plain['test_mean'], 2)} / {pct(soft['test_mean'], 2)} / "
                     f"{pct(flip['test_mean'], 2)}, 98% after {_thousands(plain['images_to_target'])} / "
                     f"{_thousands(soft['images_to_target'])} / {_thousands(flip['images_to_target'])} images "
                     f"({seconds} s)")
    load = rec["record"]["machine"]["load_before"][0]
    what = (f"the seed article's mistakes, fast recipe, {len(rec['seeds'])} seeds: test accuracy and training images "
            "(seconds) to 98% validation, without / softmax before the loss / random horizontal flips")
    return what, "; ".join(parts) + f"; load {load:.1f}"


# (sources, row function, command, RESULTS file); a row whose record is missing is left out
Row = tuple[tuple[str, ...], Callable, str, str]
ROWS: list[Row] = [
    (("browser_latency",), browser_latency, "python -m benchmarks.browser_latency", "RESULTS-pad"),
    (("drawn",), drawn, "python -m benchmarks.drawn", "RESULTS-draw"),
    (("calibration",), calibration, "python -m benchmarks.calibration", "RESULTS-calibration"),
    (("speed",), speed, "python -m benchmarks.vs_seed --repeats 3", "RESULTS-speed"),
    (("seeds-lenet", "seeds-cnnnet", "seeds-mlp"), None, "python -m benchmarks.seeds --seeds 0-9", "RESULTS-speed"),
    (("app_train",), app_train, "python -m benchmarks.app_train", "RESULTS-app"),
    (("visitors",), visitors, "python -m benchmarks.visitors", "RESULTS-visitors"),
    (("inpage",), inpage, "python -m benchmarks.inpage", "RESULTS-inpage"),
    (("flood",), flood, "python -m benchmarks.flood", "RESULTS-visitors"),
    (("notdigit",), notdigit, "python -m benchmarks.notdigit --write", "RESULTS-notdigit"),
    (("fool",), fool, "python -m benchmarks.fool", "RESULTS-fool"),
    (("seed_mistakes",), seed_mistakes, "python -m benchmarks.seed_mistakes", "RESULTS-fool"),
]


def table(folder: Path = RESULTS) -> str:
    """The figures table (header and rows), from the records in ``folder``."""
    lines = [HEADER]
    for sources, fn, command, results in ROWS:
        recs = {name: load(name, folder) for name in sources}
        present = {k: v for k, v in recs.items() if v is not None}
        if not present:
            continue
        if fn is None:  # the seeds row: one record per model
            what, figure = seeds({k.split("-", 1)[1]: v for k, v in present.items()})
        else:
            what, figure = fn(present[sources[0]])
        dates = sorted({date_of(r) for r in present.values()})
        lines.append(f"| {what} | {figure} | `{command}` ({results}; {', '.join(dates)}) |")
    return "\n".join(lines)


def splice(readme: str, new_table: str) -> str:
    """``readme`` with the text between the markers replaced by ``new_table``; ValueError without markers."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {START} ... {END} block")
    return readme[: start + len(START)] + "\n" + new_table + "\n" + readme[end:]


def check(readme_path: Path = README, folder: Path = RESULTS) -> list[str]:
    """The differences between the README's table and the records' (empty when they agree)."""
    text = readme_path.read_text()
    want = splice(text, table(folder))
    return list(difflib.unified_diff(text.splitlines(), want.splitlines(), "README.md", "from the records", lineterm=""))


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only compare: exit 1 when the README disagrees with the records")
    p.add_argument("--print", dest="show", action="store_true", help="print the table instead of writing the README")
    args = p.parse_args(argv)
    if args.show:
        print(table())
        return 0
    if args.check:
        diff = check()
        if diff:
            print("README.md's figures disagree with benchmarks/results/*.json; run python -m benchmarks.report\n"
                  + "\n".join(diff))
            return 1
        print("README.md's figures agree with benchmarks/results/*.json")
        return 0
    README.write_text(splice(README.read_text(), table()))
    print(f"wrote the figures table of {README.name} from {len(list(RESULTS.glob('*.json')))} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
