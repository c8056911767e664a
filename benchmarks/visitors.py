"""Many visitors at once on one app, now that the page reads drawings itself: page loads, Explain clicks, runs.

Drawing costs the server nothing (the page computes the answer; tests/e2e/test_inpage.py checks
that no request goes out while drawing), so the server's load is page loads, the clicks that
need it, and the training queue. The app runs in a child process (``app.build_demo`` on a
training slice), so its CPU and memory are the server's alone. Every visitor is one
``gradio_client.Client`` (one session) in its own thread, at the trainer's priority (nice 10): the
visitors stand for browsers on other machines, and at the server's priority their own work starved
the server's training runs.

1. **page loads**: ``--loaders`` visitors fetch what a first visit fetches from the server (the
   page, the scripts and styles it names, digitnet-core.js, pad.js, answer.js and the three
   shipped specs) over and over for ``--load-seconds``: loads per second, median and p95.
2. **64 visitors**: ``--drawers`` (56) open a session and draw; each clicks Explain about every
   ``--explain-every`` seconds (exponentially distributed), sending the pad's payload of a drawn
   MNIST test digit (``benchmarks/drawn.py``). The server's CPU is measured over
   ``--idle-seconds`` while they draw alone; then ``--trainers`` (8) queue a LeNet run each at
   the same moment and follow it with /status until it ends. Reported: every run finished,
   the waits, Explain latency and errors, the server's CPU while the runs train.
3. **sessions** (``--sessions N``): N visitors come one after another; every tenth trains a tiny
   run, the others add three digits; each then leaves. Resident memory before and after.

    DIGITNET_DATA=/path/to/mnist python -m benchmarks.visitors --json benchmarks/results/visitors.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import record
from benchmarks.drawn import launch_app_process, make_drawings, stop_app_process
from digitnet.preprocess import pad_payload
from digitnet.scheduler import TRAINER_NICENESS

STARTUP_TIMEOUT = 240
# A short run: one LeNet epoch on 5,000 images (a few seconds on two cores).
TRAIN_SLICE = dict(train_limit=5_000, val_size=1_000, test_limit=1_000)
TINY_SLICE_EPOCHS = 1
HEARTBEAT_SECONDS = 15  # Gradio's heartbeat: a closed session is noticed within about two of these
STATUS_POLL_SECONDS = 0.5
OPEN_STAGGER_SECONDS = 0.2  # drawers open the page this far apart
CLIENT_TIMEOUT_SECONDS = 120  # a drawer's requests wait this long, as a browser would (gradio_client: 5 s)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS) or its peak (VmHWM) in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def page_load_urls(url: str) -> list[str]:
    """What a first visit fetches from the server: the page, the scripts and styles it names, the page's
    own recognition code and the three shipped specs (the JS bundles' own imports aside)."""
    import re
    import urllib.request

    html = urllib.request.urlopen(url, timeout=60).read().decode()
    names = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|json)[^"]*)"', html)
    names += re.findall(r'gradio_api/file=[^"\\\s]+?\.(?:js|json)\?v=[0-9a-f]+', html)
    out = []
    for name in dict.fromkeys(names):
        out.append(name if name.startswith("http") else url.rstrip("/") + "/" + name.lstrip("./"))
    return [url] + out


def page_loads(url: str, concurrency: int, seconds: float) -> dict:
    """``concurrency`` visitors load the page over and over for ``seconds``: loads per second and load times."""
    import urllib.request

    urls = page_load_urls(url)
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def visitor() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                size = sum(len(urllib.request.urlopen(u, timeout=60).read()) for u in urls)
                with lock:
                    times.append(time.perf_counter() - t0)
                    sizes.append(size)
            except Exception as exc:  # counted, never fatal
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    sizes: list[int] = []
    threads = [threading.Thread(target=visitor) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "files_per_load": len(urls), "bytes_per_load": sizes[0] if sizes else None,
            "loads": len(times), "errors": len(errors), "error_examples": errors[:3],
            "loads_per_s": round(len(times) / wall, 2),
            "median_ms": round(1000 * statistics.median(times)) if times else None,
            "p95_ms": round(1000 * percentile(times, 95)) if times else None}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drawers_phase(url: str, pngs: list[tuple[int, str]], drawers: int, until, explain_every: float) -> dict:
    """``drawers`` visitors with the page open, drawing: the page reads each drawing itself, so the server
    hears from a drawer only when they click Explain, about every ``explain_every`` s (random, seeded), with
    the pad's payload of their drawing. Runs until ``until()`` is true."""
    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def visitor(k: int) -> None:
        rng = np.random.default_rng(k)
        time.sleep(k * OPEN_STAGGER_SECONDS)  # visitors arrive one after another, not in the same millisecond
        try:
            # The page's session. A browser waits for a busy server; gradio_client's default is 5 s.
            client = Client(url, verbose=False, httpx_kwargs={"timeout": CLIENT_TIMEOUT_SECONDS})
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        i = 0
        while not until():
            pause = rng.exponential(explain_every)
            t_end = time.perf_counter() + pause
            while time.perf_counter() < t_end and not until():
                time.sleep(0.2)
            if until():
                break
            label, png = pngs[(k * 97 + i) % len(pngs)]
            payload = pad_payload(np.asarray(Image.open(png))[..., 3])
            t0 = time.perf_counter()
            try:
                text, *_ = client.predict(payload, None, "lenet", api_name="/explain")
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if "reads a" not in text:
                        errors.append(f"no explanation: {text[:80]}")
            except Exception as exc:  # counted, never fatal
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
            i += 1
        client.close()

    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(drawers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"drawers": drawers, "explains": len(latencies) + len(errors), "errors": len(errors),
            "error_examples": errors[:3],
            "median_ms": round(1000 * statistics.median(latencies)) if latencies else None,
            "p95_ms": round(1000 * percentile(latencies, 95)) if latencies else None}


def train_phase(url: str, trainers: int, epochs: int) -> tuple[list[dict], threading.Event]:
    """Start ``trainers`` visitors' runs at once; returns (their records, an event set when all ended)."""
    from gradio_client import Client

    records: list[dict] = [{} for _ in range(trainers)]
    done = threading.Event()
    start = threading.Barrier(trainers)

    def visitor(k: int) -> None:
        client = Client(url, verbose=False)
        rec = records[k]
        start.wait()
        t0 = time.perf_counter()
        try:
            first = client.predict(model="lenet", epochs=epochs, api_name="/train")
            answered = time.perf_counter()  # the estimate is the queue's word at this moment
            rec.update(position=first.get("position"), estimate_s=first.get("starts_in_seconds"))
            shown = []  # (when, the countdown /status showed then) while the run waited
            while True:
                s = client.predict(api_name="/status")
                if s["state"] == "queued" and s.get("starts_in_seconds") is not None:
                    shown.append((time.perf_counter(), s["starts_in_seconds"]))
                if s["state"] == "running" and "wait_s" not in rec:  # it started elapsed_seconds ago
                    started = time.perf_counter() - (s.get("elapsed_seconds") or 0.0)
                    rec["wait_s"] = max(0.0, started - answered)
                    if rec["estimate_s"]:
                        rec["estimate_over_wait"] = round(rec["estimate_s"] / max(rec["wait_s"], 1e-3), 2)
                    # The countdown as it went: what it said against what was really left, where over 1 s was
                    ratios = [said / (started - when) for when, said in shown if started - when > 1.0]
                    if ratios:
                        rec["countdown_over_rest"] = round(statistics.median(ratios), 2)
                if s["state"] not in ("queued", "running"):
                    rec.update(state=s["state"], test_acc=s["test_acc"], total_s=time.perf_counter() - t0)
                    rec.setdefault("wait_s", rec["total_s"])
                    break
                time.sleep(STATUS_POLL_SECONDS)
        except Exception as exc:
            rec.update(state="error", error=f"{type(exc).__name__}: {exc}"[:200])
        client.close()

    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(trainers)]
    for t in threads:
        t.start()

    def wait_all() -> None:
        for t in threads:
            t.join()
        done.set()

    threading.Thread(target=wait_all, daemon=True).start()
    return records, done


def sessions_phase(url: str, sessions: int, digit_pngs: list[tuple[int, str]], pid: int) -> dict:
    """``sessions`` visitors come, train a tiny run or add digits, and go; memory before and after."""
    from gradio_client import Client

    before = rss_mb(pid)
    trained = added = 0
    for k in range(sessions):
        client = Client(url, verbose=False)
        if k % 10 == 0:
            client.predict(model="mlp", epochs=TINY_SLICE_EPOCHS, api_name="/train")
            while client.predict(api_name="/status")["state"] in ("queued", "running"):
                time.sleep(STATUS_POLL_SECONDS)
            trained += 1
        else:
            for label, png in digit_pngs[k % 7: k % 7 + 3]:  # as the pad sends a drawing
                payload = pad_payload(np.asarray(Image.open(png))[..., 3])
                client.predict(payload, None, str(label), api_name="/add_digit")
            added += 1
        client.close()
    peak_during = rss_mb(pid)
    time.sleep(3 * HEARTBEAT_SECONDS)  # every closed session's unload has run by now
    after = rss_mb(pid)
    return {"sessions": sessions, "trained": trained, "added_digits": added, "rss_before_mb": round(before, 1),
            "rss_with_sessions_mb": round(peak_during, 1), "rss_after_mb": round(after, 1),
            "growth_mb": round(after - before, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loaders", type=int, default=8, help="visitors loading the page at once (default: 8)")
    p.add_argument("--load-seconds", type=float, default=30, help="how long they load pages (default: 30)")
    p.add_argument("--trainers", type=int, default=8, help="visitors who queue a run (default: 8)")
    p.add_argument("--drawers", type=int, default=56, help="visitors who draw meanwhile (default: 56)")
    p.add_argument("--explain-every", type=float, default=20, help="mean seconds between a drawer's Explain clicks "
                   "(default: 20)")
    p.add_argument("--idle-seconds", type=float, default=60, help="drawers alone, server CPU measured (default: 60)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of each queued LeNet run (default: 1)")
    p.add_argument("--sessions", type=int, default=0, help="visitors who come and go at the end (default: 0)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    drawings = make_drawings(60, seed=1)
    header = record.start(argv)
    load_before = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="digitnet-visitors-") as tmp:
        work = Path(tmp)
        pngs = []
        for i, d in enumerate(drawings):
            path = work / f"{i}.png"
            Image.fromarray(d.canvas).save(path)
            pngs.append((d.label, str(path)))
        server, url = launch_app_process(work, STARTUP_TIMEOUT, train_overrides=TRAIN_SLICE)
        # The emulated visitors stand for browsers on other machines, but run on the server's cores: at the
        # server's priority, their own work (0.9 of a core during the burst of /train calls, measured)
        # came before the trainer's (nice TRAINER_NICENESS) and starved it. From here on this process and
        # every thread it starts run at the trainer's priority (the server, started above, keeps its own).
        os.nice(TRAINER_NICENESS)
        try:
            pid = server.pid
            base_rss = rss_mb(pid)
            loads = page_loads(url, args.loaders, args.load_seconds)
            print(f"page loads: {loads['loads_per_s']}/s with {args.loaders} at once, median {loads['median_ms']} ms, "
                  f"p95 {loads['p95_ms']} ms, {loads['errors']} errors ({loads['files_per_load']} files, "
                  f"{loads['bytes_per_load']:,} bytes a load)", flush=True)
            # The drawers open the page and draw; after --idle-seconds the trainers queue their runs.
            stop = threading.Event()
            trainers_started = threading.Event()
            window: dict = {}

            def drawers() -> None:
                window["result"] = drawers_phase(url, pngs, args.drawers, stop.is_set, args.explain_every)

            drawing = threading.Thread(target=drawers)
            drawing.start()
            time.sleep(args.drawers * OPEN_STAGGER_SECONDS + 5)  # every drawer's session is open
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            time.sleep(args.idle_seconds)
            idle_cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
            print(f"server CPU while {args.drawers} draw: {idle_cpu:.1%} of one core", flush=True)
            records, all_ended = train_phase(url, args.trainers, args.epochs)
            trainers_started.set()
            cpu1, t1 = cpu_seconds(pid), time.perf_counter()
            all_ended.wait()
            training_cpu = (cpu_seconds(pid) - cpu1) / (time.perf_counter() - t1)
            stop.set()
            drawing.join()
            during = window["result"]
            peak = rss_mb(pid, "VmHWM")
            finished = report(records, loads, during, idle_cpu, training_cpu, base_rss, peak, args)
            sessions = sessions_phase(url, args.sessions, pngs, pid) if args.sessions else None
        finally:
            stop_app_process(server)
    if sessions:
        print(f"\n{sessions['sessions']} sessions came and went ({sessions['trained']} trained, "
              f"{sessions['added_digits']} added digits): server RSS {sessions['rss_before_mb']} MB before, "
              f"{sessions['rss_with_sessions_mb']} MB right after, {sessions['rss_after_mb']} MB once they were "
              f"gone: {sessions['growth_mb']:+.1f} MB")
    record.write(args.json, header, {
            "benchmark": "visitors",
            "load": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
            "seconds": round(time.time() - started), "page_loads": loads,
            "drawers": during, "server_cpu_while_drawing": round(idle_cpu, 4),
            "server_cpu_while_training": round(training_cpu, 4), "runs": records,
            "runs_finished": finished, "peak_rss_mb": round(peak, 1), "start_rss_mb": round(base_rss, 1),
            "sessions": sessions})
    return 0 if finished == len(records) and not loads["errors"] and not during["errors"] else 1


def report(records: list[dict], loads: dict, during: dict, idle_cpu: float, training_cpu: float, base_rss: float,
           peak: float, args) -> int:
    """Print the runs and the drawers' Explain clicks; return how many runs finished."""
    finished = sum(r.get("state") == "done" for r in records)
    waits = sorted(r.get("wait_s", float("nan")) for r in records)
    print(f"server memory at start: {base_rss:.0f} MB; peak: {peak:.0f} MB")
    print(f"\nruns: {finished}/{len(records)} finished; waits in the queue (s): "
          + ", ".join(f"{w:.1f}" for w in waits))
    for key, what in (("estimate_over_wait", "start estimate (the /train answer) / actual wait"),
                      ("countdown_over_rest", "countdown while waiting / the rest of the wait (median of its polls)")):
        ratios = sorted(r[key] for r in records if key in r)
        if ratios:
            print(f"{what}, per queued run: {', '.join(f'{x:.2f}' for x in ratios)} "
                  f"({sum(0.5 <= x <= 1.5 for x in ratios)}/{len(ratios)} within +-50%)")
    for k, r in enumerate(records):
        print(f"  visitor {k}: position {r.get('position')}, estimated {r.get('estimate_s')} s, "
              f"waited {r.get('wait_s', float('nan')):.1f} s, done after "
              f"{r.get('total_s', float('nan')):.1f} s, {r.get('state')}, test acc {r.get('test_acc')}"
              + (f", {r['error']}" if r.get("error") else ""))
    print(f"\n{args.drawers} drawers: {during['explains']} Explain clicks, {during['errors']} errors, median "
          f"{during['median_ms']} ms, p95 {during['p95_ms']} ms; server CPU {idle_cpu:.1%} of a core while they "
          f"drew alone, {training_cpu:.1%} while {args.trainers} runs trained", flush=True)
    return finished


if __name__ == "__main__":
    raise SystemExit(main())
