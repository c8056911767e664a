"""A visitor's Train click with the defaults, while the app serves: how long until their model is ready.

Starts the app in its own process (``app.build_demo()``, its trainer at a lower priority, as
deployed), then for each model asks ``/train`` for the fast recipe (the form's defaults: only
``model`` and ``epochs`` are given, the epochs of ``FAST_RECIPES``) and polls ``/status`` until
the run ends. The clock runs from the ``/train`` call to the first ``/status`` that says ``done``:
what the visitor waits, queueing and the test pass included.

    python -m benchmarks.app_train --repeats 3 --json benchmarks/results/app_train.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.drawn import launch_app_process, stop_app_process
from digitnet.training import FAST_RECIPES
from benchmarks import record

POLL_SECONDS = 0.5


def one_run(client, model: str) -> dict:
    """Queue the fast recipe for ``model`` and wait for it to end; its figures."""
    t0 = time.perf_counter()
    client.predict(model=model, epochs=FAST_RECIPES[model]["epochs"], api_name="/train")
    while True:
        status = client.predict(api_name="/status")
        if status["state"] in ("done", "stopped", "error"):
            break
        time.sleep(POLL_SECONDS)
    return {"model": model, "seconds": time.perf_counter() - t0, "state": status["state"],
            "test_acc": status.get("test_acc"), "message": status.get("message")}


def main(argv: list[str] | None = None) -> int:
    from gradio_client import Client

    p = argparse.ArgumentParser(prog="python -m benchmarks.app_train", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet,cnnnet,mlp", help="comma-separated models (default: lenet,cnnnet,mlp)")
    p.add_argument("--repeats", type=int, default=3, help="runs per model (default: 3)")
    p.add_argument("--json", default=None, help="also write the runs and their medians here")
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    header = record.start(argv)

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        server, url = launch_app_process(Path(tmp), timeout=120)
        try:
            client = Client(url, verbose=False)
            print(f"app at {url}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
            for repeat in range(args.repeats):
                for model in models:
                    run = one_run(client, model)
                    runs.append(run)
                    acc = "-" if run["test_acc"] is None else f"{100 * run['test_acc']:.2f}%"
                    print(f"[{repeat + 1}/{args.repeats}] {model}: {run['state']} in {run['seconds']:.1f} s, test {acc} ({run['message']})")
        finally:
            stop_app_process(server)
    summary = {}
    for model in models:
        seconds = [r["seconds"] for r in runs if r["model"] == model and r["state"] == "done"]
        if seconds:
            summary[model] = {"median_seconds": statistics.median(seconds), "min": min(seconds), "max": max(seconds)}
            print(f"{model}: median {summary[model]['median_seconds']:.1f} s ({min(seconds):.1f}-{max(seconds):.1f})")
    record.write(args.json, header, {"runs": runs, "summary": summary, "recipes": dict(FAST_RECIPES)})
    return 0 if all(r["state"] == "done" for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
