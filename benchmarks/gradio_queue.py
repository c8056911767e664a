"""Could Gradio's own queue replace digitnet's Scheduler? (issue 24, item 9) A measured answer.

A minimal Gradio Blocks app (not digitnet's), launched in this process on localhost, binds a
training-like generator ``train(epochs, tag)`` with ``concurrency_limit=1, concurrency_id="train"``
(one run at a time, Gradio's queue keeps the order), a plain function ``train_plain(seconds, tag)``
on the same concurrency id, and a cheap ``predict(x)`` on its own event. Every run writes what it
did into a server-side log (start, end, how it ended: done / closed at a yield / ...), which this
script reads to tell what the server really did, beside what ``gradio_client`` reported:

a. **eta**: four sessions submit training runs of 5, 1, 5 and 1 epochs on a fresh server, then
   four more (1, 5, 1, 5) once Gradio has learned from finished runs, then runs of one length
   (1, 1, 1, 1 and 5, 5, 5) after that mix. For every queued job,
   the rank and ``eta`` of its first ``Job.status()`` in the queue against the time it actually
   took from then until its result (Gradio's ``rank_eta`` is "until the result": wait + run); beside
   it, an estimate that knows each run's epochs (seconds per epoch learned from the same finished
   runs), as digitnet's ``eta.py`` does per optimiser step.
b. **predict**: latency of ``--calls`` cheap predict calls alone, then while a run trains with
   three more queued (Gradio's ``max_size`` counts every event queue together: is a predict
   refused when only training fills the queue?).
c. **cancel**: ``job.cancel()`` on a queued run, on a running generator and on a running plain
   function: does the function stop, how long after, and does the next run start while the
   cancelled one still works (two runs at once)?
d. **disconnect**: a session (raw ``/queue/join`` + the ``/queue/data`` stream, as a tab holds
   it) queues a run and closes its stream, as a closed tab does: is its running/queued run dropped?
e. **outlive and see**: a run joined without ever opening the stream (fire and forget): does it
   run? What does another session see of the queue (``/gradio_api/queue/status``)?
f. **per-visitor state** (issue 24, item 7): a ``gr.State(delete_callback=...)`` kept by a client's
   session, and ``demo.unload``, when the client closes (its heartbeat ends, as a closed tab's
   does): which is called, how soon. And the ``session_hash`` a ``gr.api`` function gets from
   ``gr.Request`` for two plain ``/call/<api>`` requests (no session of their own).

Runs sleep in ``--step`` slices (``--work sleep``, default) or compute a small torch loop
(``--work torch``): the questions are about the queue, not the compute. About a minute and a half.

    nice -n 10 python -m benchmarks.gradio_queue --json benchmarks/results/gradio_queue.json
    nice -n 10 python -m benchmarks.gradio_queue --work torch --json benchmarks/results/gradio_queue-torch.json

What the figures decided is in CONTRIBUTING.md ("Why a queue of our own, and why visitor_handler").
"""

import argparse
import datetime
import json
import os
import statistics
import tempfile
import threading
import time

from benchmarks import record

SECONDS_PER_EPOCH = 1.0  # a "1 epoch" run takes ~1 s and a "5 epoch" run ~5 s: two lengths Gradio cannot tell apart
LOG: list[dict] = []  # the server's own record of every run (this process: the app runs in it)
LOG_LOCK = threading.Lock()
GONE: list[tuple] = []  # (what, when, value): gr.State's delete_callback and demo.unload calls


def now() -> float:
    return time.monotonic()


def busy(seconds: float, work: str) -> None:
    """Sleep ``seconds``, or compute small matmuls for that long (``work="torch"``)."""
    if work == "sleep":
        time.sleep(seconds)
        return
    import torch
    end, a = now() + seconds, torch.randn(128, 128)
    while now() < end:
        a = torch.tanh(a @ a)


def build(step: float, work: str, max_size: int):
    """The minimal app: a training generator and a plain 'training' on one concurrency id, and predict."""
    import gradio as gr

    def start(tag: str, kind: str) -> dict:
        rec = {"tag": tag, "kind": kind, "start": now(), "end": None, "how": None, "steps": 0, "epochs": None}
        with LOG_LOCK:
            LOG.append(rec)
        return rec

    def train(epochs: float, tag: str):
        """A training run: one yield per step, as digitnet's live curves would stream."""
        rec = start(tag, "generator")
        rec["epochs"] = float(epochs)
        try:
            for i in range(max(1, round(epochs * SECONDS_PER_EPOCH / step))):
                busy(step, work)
                rec["steps"] += 1
                yield f"{tag}: step {i + 1}"
            rec["how"] = "done"
        except GeneratorExit:  # Gradio closed the generator at a yield (cancel, disconnect)
            rec["how"] = "closed at a yield"
            raise
        finally:
            rec["end"] = now()

    def train_plain(seconds: float, tag: str) -> str:
        """A training run without yields: nothing can stop it from outside."""
        rec = start(tag, "plain")
        for _ in range(max(1, round(seconds / step))):
            busy(step, work)
            rec["steps"] += 1
        rec["how"], rec["end"] = "done", now()
        return tag

    def predict(x: float) -> float:
        return float(x) * 2.0

    def touch(state: dict) -> tuple[int, dict]:
        state["n"] += 1
        return state["n"], state

    def left(request: gr.Request) -> None:
        GONE.append(("unload", now(), request.session_hash))

    def whoami(request: gr.Request) -> str:
        return request.session_hash or ""

    with gr.Blocks() as demo:
        kept = gr.State(lambda: {"n": 0}, delete_callback=lambda value: GONE.append(("state", now(), value["n"])))
        count = gr.Number()
        gr.Button("touch").click(touch, kept, [count, kept], api_name="touch")
        gr.api(whoami, api_name="whoami")
        demo.unload(left)
        epochs, tag, out = gr.Number(), gr.Textbox(), gr.Textbox()
        num, num_out = gr.Number(), gr.Number()
        gr.Button("train").click(train, [epochs, tag], out, api_name="train", concurrency_id="train",
                                 concurrency_limit=1)
        gr.Button("plain").click(train_plain, [epochs, tag], out, api_name="train_plain", concurrency_id="train",
                                 concurrency_limit=1)
        gr.Button("predict").click(predict, num, num_out, api_name="predict")  # its own event: limit 1
    # As app.py queues: one global max_size, default_concurrency_limit=1.
    return demo.queue(max_size=max_size, default_concurrency_limit=1)


def run_of(tag: str) -> dict | None:
    with LOG_LOCK:
        return next((dict(r) for r in LOG if r["tag"] == tag), None)


def wait_for(cond, timeout: float, every: float = 0.02) -> bool:
    end = now() + timeout
    while now() < end:
        if cond():
            return True
        time.sleep(every)
    return cond()


def max_overlap(tags: set[str]) -> int:
    """The most runs (of ``tags``) that were working at the same moment, from the server's log."""
    with LOG_LOCK:
        spans = [(r["start"], r["end"] or now()) for r in LOG if r["tag"] in tags]
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def learned_seconds(demo) -> dict:
    """Gradio's learned process time per function (its queue's running average; internal, read for the record)."""
    per_fn = getattr(demo._queue, "process_time_per_fn", {})
    return {fn.name: round(p.avg_time, 2) for fn, p in per_fn.items()}


def per_epoch_estimate(epochs_ahead: list[float], epochs: float) -> float | None:
    """What an estimate that knows each run's length says now: seconds per epoch learned from the finished
    runs (this script's log), times the epochs left of the running run, of those ahead and of this one.
    (digitnet's eta.Estimator does this per optimiser step, with a speed prior before any run finished.)"""
    with LOG_LOCK:
        done = [r for r in LOG if r["kind"] == "generator" and r["how"] == "done"]
        running = [r for r in LOG if r["kind"] == "generator" and r["end"] is None]
    if not done:
        return None
    rate = sum(r["end"] - r["start"] for r in done) / sum(r["epochs"] for r in done)
    left = sum(max(0.0, r["epochs"] * rate - (now() - r["start"])) for r in running)
    return left + rate * (sum(epochs_ahead) + epochs)


def eta_phase(clients: list, epochs: list[int], label: str, poll: float = 0.05) -> list[dict]:
    """Submit one run per client, each once the one before has joined the queue (so the order is known);
    each queued job's first rank and eta against the time from that status to its result."""
    from gradio_client.utils import Status

    joined = (Status.IN_QUEUE, Status.PROCESSING, Status.ITERATING, Status.FINISHED)
    jobs = []
    for i, (c, e) in enumerate(zip(clients, epochs)):
        tag = f"{label}-{i}-e{e}"
        jobs.append({"tag": tag, "epochs": e, "job": c.submit(e, tag, api_name="/train"), "submitted": now(),
                     "seen": None})
        wait_for(lambda: jobs[-1]["job"].status().code in joined or run_of(tag) is not None, 10)
    while not all(j["job"].done() for j in jobs):
        for j in jobs:
            if j["seen"] is None and not j["job"].done():
                s = j["job"].status()
                if s.code == Status.IN_QUEUE and s.rank is not None:
                    # The eta counts from the message's arrival (the client stamps it): measure from there.
                    age = (datetime.datetime.now() - s.time).total_seconds() if s.time else 0.0
                    ahead = [k["epochs"] for k in jobs[:jobs.index(j)] if run_of(k["tag"]) is None]
                    j["seen"] = {"at": now() - age, "rank": s.rank, "eta": s.eta, "queue_size": s.queue_size,
                                 "per_epoch": per_epoch_estimate(ahead, j["epochs"])}
        time.sleep(poll)
    rows = []
    for j in jobs:
        j["job"].result()
        run, done = run_of(j["tag"]), now()
        seen = j["seen"]
        row = {"tag": j["tag"], "epochs": j["epochs"], "run_seconds": round(run["end"] - run["start"], 2)}
        if seen is None:
            row["queued"] = False  # it started before a status with a rank arrived
        else:
            actual = run["end"] - seen["at"]  # until the run's last step (its result follows within ms)
            row.update(queued=True, rank=seen["rank"], queue_size=seen["queue_size"],
                       eta=None if seen["eta"] is None else round(seen["eta"], 2), actual_seconds=round(actual, 2),
                       eta_over_actual=None if seen["eta"] is None else round(seen["eta"] / actual, 2),
                       per_epoch_over_actual=None if seen["per_epoch"] is None else round(seen["per_epoch"] / actual, 2))
        row["wall_after_submit"] = round(done - j["submitted"], 2)
        rows.append(row)
    return rows


def predict_latency(client, calls: int) -> dict:
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        assert client.predict(i, api_name="/predict") == 2.0 * i
        times.append(time.perf_counter() - t0)
    return {"calls": calls, "median_ms": round(1000 * statistics.median(times), 1),
            "max_ms": round(1000 * max(times), 1)}


def raw_session(url: str, fn_index: int, data: list, session: str, stream_until: str | None) -> dict:
    """Join the queue as a tab does; read the /queue/data stream until the message ``stream_until``
    (then close it, as closing the tab does), or never open it (None)."""
    import httpx

    r = httpx.post(f"{url}gradio_api/queue/join", json={"data": data, "fn_index": fn_index,
                                                         "session_hash": session}, timeout=30)
    out = {"join_status": r.status_code}
    if stream_until is None or r.status_code != 200:
        return out
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=30) as s:
        for line in s.iter_lines():
            msg = json.loads(line[5:]) if line.startswith("data:") else {}
            if msg.get("msg") == stream_until:
                out["closed_at"], out["output"] = now(), msg.get("output")
                break
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=float, default=0.25, help="seconds between a run's yields")
    ap.add_argument("--work", choices=["sleep", "torch"], default="sleep")
    ap.add_argument("--calls", type=int, default=20, help="predict calls per latency measurement")
    ap.add_argument("--max-size", type=int, default=4, help="demo.queue(max_size=...) (app.py: QUEUE_MAX_SIZE)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    header = record.start(argv)
    os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="gq-gradio-"))
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import httpx
    from gradio_client import Client

    demo = build(args.step, args.work, args.max_size)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    url = demo.local_url
    index = {d["api_name"]: d["id"] for d in httpx.get(f"{url}config").json()["dependencies"] if d.get("api_name")}
    figures: dict = {"settings": {"seconds_per_epoch": SECONDS_PER_EPOCH, "step": args.step, "work": args.work,
                                  "max_size": args.max_size, "gradio": __import__("gradio").__version__}}
    try:
        clients = [Client(url, verbose=False) for _ in range(6)]

        # (b, alone) predict with nothing queued.
        figures["predict_idle"] = predict_latency(clients[5], args.calls)

        # (a) fresh server, then with history.
        first = eta_phase(clients[:4], [5, 1, 5, 1], "fresh")
        # (b) predict while the second batch trains: one running and three queued (max_size 4 not reached).
        lat: dict = {}
        t = threading.Thread(target=lambda: (time.sleep(1.0), lat.update(predict_latency(clients[5], args.calls))))
        t.start()
        learned_avg = learned_seconds(demo)
        learned = eta_phase(clients[:4], [1, 5, 1, 5], "learned")
        t.join()
        figures["predict_while_training"] = lat
        # Runs of one length after a mix: Gradio's one average per function, whatever the epochs.
        short_avg = learned_seconds(demo)
        short = eta_phase(clients[:4], [1, 1, 1, 1], "short")
        long_avg = learned_seconds(demo)
        long = eta_phase(clients[:3], [5, 5, 5], "long")

        def summary(rows):
            ratios = [r["eta_over_actual"] for r in rows if r.get("eta_over_actual") is not None]
            known = [r["per_epoch_over_actual"] for r in rows if r.get("per_epoch_over_actual") is not None]
            return {"queued_jobs": sum(r.get("queued", False) for r in rows),
                    "without_eta": sum(1 for r in rows if r.get("queued") and r["eta"] is None),
                    "eta_over_actual": ratios,
                    "within_50_percent": sum(0.5 <= x <= 1.5 for x in ratios),
                    "per_epoch_over_actual": known,
                    "per_epoch_within_50_percent": sum(0.5 <= x <= 1.5 for x in known)}
        figures["eta"] = {"fresh": {"gradio_average_s": None, "jobs": first, **summary(first)},
                          "learned": {"gradio_average_s": learned_avg, "jobs": learned, **summary(learned)},
                          "short_after_mixed": {"gradio_average_s": short_avg, "jobs": short, **summary(short)},
                          "long_after_mixed": {"gradio_average_s": long_avg, "jobs": long, **summary(long)}}

        # (b) max_size is one limit for every event: fill it with training runs, then predict.
        fill = [clients[0].submit(3, "fill-0", api_name="/train")]
        wait_for(lambda: run_of("fill-0") is not None, 10)
        for i in range(1, args.max_size + 1):
            fill.append(clients[i % 5].submit(1, f"fill-{i}", api_name="/train"))
            time.sleep(0.1)
        waiting = httpx.get(f"{url}gradio_api/queue/status").json()["queue_size"]
        try:
            clients[5].predict(1, api_name="/predict")
            refused = None
        except Exception as exc:  # noqa: BLE001 - what the API user gets is the figure
            refused = f"{type(exc).__name__}: {exc}"[:160]
        figures["predict_when_training_fills_max_size"] = {"training_runs_waiting": waiting,
                                                           "predict_refused": refused}
        for j in fill:
            try:
                j.result()
            except Exception:  # noqa: BLE001 - the 5th+ fill may itself be refused (queue full)
                pass

        # (c) cancel: a running generator, a queued run, a running plain function.
        ca = clients[0].submit(5, "cancel-running-gen", api_name="/train")
        wait_for(lambda: run_of("cancel-running-gen") is not None, 10)
        cb = clients[1].submit(1, "after-cancelled-gen", api_name="/train")
        time.sleep(0.15)
        cq = clients[2].submit(1, "cancel-queued", api_name="/train")
        time.sleep(1.1 - 0.15)  # mid-step: between two yields
        t_cancel = now()
        ca.cancel()
        cq.cancel()
        wait_for(lambda: (run_of("after-cancelled-gen") or {}).get("end") is not None, 15)
        cb.result()
        gen, nxt = run_of("cancel-running-gen"), run_of("after-cancelled-gen")
        time.sleep(0.5)
        cancel = {"running_generator": {
            "how_it_ended": gen["how"], "steps_done": gen["steps"], "of_steps": round(5 * SECONDS_PER_EPOCH / args.step),
            "seconds_from_cancel_to_end": None if gen["end"] is None else round(gen["end"] - t_cancel, 2),
            "next_run_started_after_cancel_s": round(nxt["start"] - t_cancel, 2),
            "two_runs_at_once": max_overlap({"cancel-running-gen", "after-cancelled-gen"}) > 1},
            "queued": {"ran_anyway": run_of("cancel-queued") is not None}}
        pa = clients[0].submit(4 * SECONDS_PER_EPOCH, "cancel-running-plain", api_name="/train_plain")
        wait_for(lambda: run_of("cancel-running-plain") is not None, 10)
        pb = clients[1].submit(1, "after-cancelled-plain", api_name="/train")
        time.sleep(0.6)
        t_cancel = now()
        pa.cancel()
        wait_for(lambda: (run_of("cancel-running-plain") or {}).get("end") is not None, 15)
        wait_for(lambda: (run_of("after-cancelled-plain") or {}).get("end") is not None, 15)
        pb.result()
        plain, nxt = run_of("cancel-running-plain"), run_of("after-cancelled-plain")
        cancel["running_plain"] = {
            "how_it_ended": plain["how"], "seconds_from_cancel_to_end": round(plain["end"] - t_cancel, 2),
            "next_run_started_after_cancel_s": round(nxt["start"] - t_cancel, 2),
            "two_runs_at_once": max_overlap({"cancel-running-plain", "after-cancelled-plain"}) > 1}
        figures["cancel"] = cancel
        time.sleep(0.5)

        # (d) a tab closes: its running run, then its queued run.
        res: dict = {}
        th = threading.Thread(target=lambda: res.update(
            running=raw_session(url, index["train"], [5, "tab-running"], "tab-a", "process_starts")))
        th.start()
        th.join()
        time.sleep(1.0)
        survivor = clients[3].submit(1, "survivor", api_name="/train")  # queued behind the closed tab's run
        wait_for(lambda: (run_of("tab-running") or {}).get("end") is not None, 10)
        run = run_of("tab-running")
        d = {"running": {"how_it_ended": run["how"], "steps_done": run["steps"],
                         "of_steps": round(5 * SECONDS_PER_EPOCH / args.step),
                         "seconds_from_close_to_end": None if run["end"] is None
                         else round(run["end"] - res["running"]["closed_at"], 2)}}
        survivor.result()
        blocker = clients[4].submit(3, "blocker", api_name="/train")
        wait_for(lambda: run_of("blocker") is not None, 10)
        res.update(queued=raw_session(url, index["train"], [1, "tab-queued"], "tab-b", "estimation"))
        blocker.result()
        time.sleep(1.0)
        d["queued"] = {"ran_anyway": run_of("tab-queued") is not None}
        figures["disconnect"] = d

        # (e) fire and forget: joined, the stream never opened. And what another session sees.
        blocker = clients[4].submit(2, "blocker2", api_name="/train")
        wait_for(lambda: run_of("blocker2") is not None, 10)
        ff = raw_session(url, index["train"], [1, "fire-and-forget"], "tab-c", None)
        seen_by_other = httpx.get(f"{url}gradio_api/queue/status").json()
        blocker.result()
        wait_for(lambda: (run_of("fire-and-forget") or {}).get("end") is not None, 10)
        figures["outlive"] = {"fire_and_forget_join": ff["join_status"],
                              "fire_and_forget_ran": (run_of("fire-and-forget") or {}).get("how"),
                              "another_session_sees_queue_status": seen_by_other}
        for c in clients:
            c.close()

        # (f) item 7: gr.State's delete_callback and demo.unload when a session ends; gr.Request from /call.
        # A tab: its events and its heartbeat connection, closed at once (as a browser closing the tab does).
        counts = [raw_session(url, index["touch"], [None], "tab-s", "process_completed")["output"]["data"][0]
                  for _ in range(2)]
        with httpx.stream("GET", f"{url}gradio_api/heartbeat/tab-s", timeout=30) as beat:
            next(beat.iter_lines())
        t_close = now()
        mine = lambda g: g[0] == "unload" and g[2] == "tab-s"  # noqa: E731
        wait_for(lambda: any(mine(g) for g in GONE), 40)
        time.sleep(3.0)
        calls = []
        for _ in range(2):
            event = httpx.post(f"{url}gradio_api/call/whoami", json={"data": []}).json()["event_id"]
            body = httpx.get(f"{url}gradio_api/call/whoami/{event}").text
            calls.append(json.loads(body.split("data:")[-1].strip())[0])
        figures["per_visitor_state"] = {
            "state_counts_in_one_session": counts,
            "unload_after_close_s": next((round(g[1] - t_close, 2) for g in GONE if mine(g)), None),
            "state_deleted_after_close_s": next((round(g[1] - t_close, 2) for g in GONE if g[0] == "state"), None),
            "looked_for_s": round(now() - t_close, 1),
            "call_session_hashes": calls, "same_session_for_two_calls": calls[0] == calls[1]}
    finally:
        demo.close()
    out = record.write(args.json, header, figures)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
