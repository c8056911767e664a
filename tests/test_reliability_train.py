"""Issue 6, training faults through the launched app: errors end cleanly, nothing leaks.

test_job.py already shows an error in the thread at the TrainingJob level; here the same
and a missing MNIST go through /train and /status (and the Train tab's status line), and
ten runs in a row must leave no threads and no memory behind.
"""

from __future__ import annotations

import gc
import threading


import digitnet.training as training
from conftest import running_app, wait_until_finished

RUN_TIMEOUT = 120  # seconds; a tiny run takes one or two here
TINY = dict(train_limit=500, val_size=100, test_limit=200)  # a run is a second or two
RUNS, WARM_UP = 10, 2
# A leak of the full training images per run (60,000 x 784 bytes = 47 MB) grows RSS by ~376 MB
# over the 8 measured runs; allocator noise here is a few MB.
RSS_GROWTH_LIMIT_MB = 100


def finished(client, timeout: float = RUN_TIMEOUT) -> dict:
    """The /status of the run once it is no longer running."""
    return wait_until_finished(client, timeout)[0]


def status_line(demo) -> str:
    """What the Train tab's status line shows now (the timer's handler, as a fresh tab sees it)."""
    refresh = next(f.fn for f in demo.fns.values() if f.name == "refresh")
    return refresh(-1, "")[2]


def rss_mb() -> float:
    """This process's resident memory in MB (the app runs in it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def train_threads() -> list[str]:
    """Names of the training threads that are alive."""
    return [t.name for t in threading.enumerate() if t.name.startswith("digitnet-train")]


def test_an_exception_in_the_training_thread_ends_in_error_and_the_next_train_works(
        served_app, client, idle_job, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(training, "build_model", broken)
    assert client.predict(model="lenet", epochs=1, api_name="/train")["state"] == "running"
    s = finished(client)
    assert s["state"] == "error"
    assert "LeNet training failed" in s["message"] and "out of memory (simulated)" in s["message"]
    assert idle_job.join(10) and not train_threads()  # the thread ended; nothing hangs
    line = status_line(served_app.demo)
    assert "**error**" in line and "out of memory (simulated)" in line
    monkeypatch.undo()
    assert client.predict(model="lenet", epochs=1, api_name="/train")["state"] == "running"  # lock released
    assert finished(client)["state"] == "done"


def test_missing_mnist_without_network_is_a_clear_error_not_a_dead_thread(served_app, client, idle_job,
                                                                       tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_DATA", str(tmp_path))  # an empty folder
    monkeypatch.setenv("DIGITNET_DOWNLOAD", "0")
    client.predict(model="mlp", epochs=1, api_name="/train")
    s = finished(client, timeout=30)  # fails fast: no network wait
    assert s["state"] == "error"
    assert f"MNIST not found in {tmp_path}" in s["message"] and "DIGITNET_DATA" in s["message"]
    assert idle_job.join(10) and not train_threads()
    assert "MNIST not found" in status_line(served_app.demo)
    monkeypatch.undo()
    client.predict(model="mlp", epochs=1, api_name="/train")
    assert finished(client)["state"] == "done"


def test_ten_runs_in_a_row_leave_no_threads_and_no_memory_behind(mnist, checkpoints_dir):
    with running_app(train_overrides=TINY) as tiny:
        client = tiny.client()
        threads, memory = [], []
        for run in range(1, RUNS + 1):
            client.predict(model="mlp", epochs=1, api_name="/train")
            s = finished(client)
            assert s["state"] == "done", s["message"]
            assert tiny.job.join(10) and not train_threads()
            if run >= WARM_UP:  # MNIST loaded, models cached, thread pools grown
                gc.collect()
                threads.append(threading.active_count())
                memory.append(rss_mb())
        growth = memory[-1] - memory[0]
        assert growth < RSS_GROWTH_LIMIT_MB, f"RSS grew {growth:.0f} MB over {RUNS - WARM_UP} runs: {memory}"
        assert threads[-1] <= threads[0] + 1, f"threads per run: {threads}"
