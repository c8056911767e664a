"""The shared training queue: first come first served, one run at a time, stop and cancel, errors, limits."""

from __future__ import annotations

import math
import os
import sys
import threading
import time

import pytest

from digitnet import settings, training
from digitnet.eta import RUN_OVERHEAD_SECONDS, Estimator, run_shape
from digitnet.scheduler import TRAINER_NICENESS, News, QueueFull, Scheduler, TrainingDisabled

SLICE = dict(train_limit=300, val_size=100, test_limit=100)  # a run takes well under a second
WAIT = 120  # seconds a test waits for a run that should end (generous: busy CI machines)


@pytest.fixture
def scheduler(mnist):
    s = Scheduler(overrides=SLICE, max_queue=3)
    yield s
    s.close()


def test_runs_wait_in_order_with_positions_and_start_estimates(scheduler, gate):
    first = scheduler.submit_training("a", 1, model="mlp", epochs=1)
    assert gate.entered.wait(WAIT)  # the first run is running, held at its first batch
    second = scheduler.submit_training("b", 1, model="lenet", epochs=2)
    third = scheduler.submit_training("c", 1, model="mlp", epochs=1)
    assert first.snapshot().state == "running" and scheduler.running is first
    assert [scheduler.position(r) for r in (first, second, third)] == [None, 1, 2]
    assert second.snapshot().state == "queued" and second.snapshot().news is News.QUEUED
    wait2, wait3 = scheduler.seconds_until_start(second), scheduler.seconds_until_start(third)
    # The third waits for the first's rest plus the whole second run: longer than the second waits.
    assert 0 < wait2 < wait3 and wait3 - wait2 == pytest.approx(scheduler.expected_seconds(second))
    held = first.snapshot().elapsed
    time.sleep(0.3)  # held at its first batch, with no progress reported: its elapsed still grows (/status
    # reports the time it has run), and all of it is still to come (how far its set-up got cannot be seen)
    assert first.snapshot().elapsed >= held + 0.3
    assert scheduler.seconds_until_start(second) == pytest.approx(scheduler.expected_seconds(first))
    order = []
    for run in (first, second, third):
        run.on_end.append(lambda r: order.append(r.owner))
    gate.open()
    assert all(r.wait_ended(WAIT) for r in (first, second, third))
    assert order == ["a", "b", "c"]  # first come, first served
    assert all(r.snapshot().state == "done" for r in (first, second, third))
    assert all(r.weights is not None and r.weights["arch"] == r.model for r in (first, second, third))


def test_the_queue_has_a_bound_and_says_so(scheduler, gate):
    running = scheduler.submit_training("a", 1, model="mlp", epochs=1)
    assert gate.entered.wait(WAIT)
    waiting = [scheduler.submit_training(f"v{i}", 1, model="mlp", epochs=1) for i in range(3)]
    with pytest.raises(QueueFull, match=r"queue is full \(3 runs are waiting.*Nothing was queued") as full:
        scheduler.submit_training("late", 1, model="mlp", epochs=1)
    assert full.value.waiting == 3  # the fact the page words
    assert len(scheduler.waiting()) == 3
    scheduler.cancel(waiting[0])  # a place frees up: the next visitor gets in
    assert scheduler.submit_training("late", 1, model="mlp", epochs=1) in scheduler.waiting()
    gate.open()
    assert running.wait_ended(WAIT)


def test_cancel_takes_a_waiting_run_out_and_stop_ends_a_running_one_alone(scheduler, gate):
    a = scheduler.submit_training("a", 1, model="mlp", epochs=30)
    assert gate.entered.wait(WAIT)
    b = scheduler.submit_training("b", 1, model="mlp", epochs=1)
    c = scheduler.submit_training("c", 1, model="lenet", epochs=1)
    s = scheduler.cancel(b)
    assert s.state == "stopped" and s.news is News.DROPPED and b.weights is None
    assert scheduler.position(c) == 1 and a.snapshot().state == "running"  # nobody else moved back
    gate.open()
    s = scheduler.cancel(a, wait=WAIT)
    assert s.state == "stopped" and len(s.history) < 30 and a.weights is None
    assert c.wait_ended(WAIT) and c.snapshot().state == "done"  # the next run started after the stop


def test_an_error_in_a_run_is_reported_and_the_next_run_works(scheduler, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(training, "build_model", broken)
    bad = scheduler.submit_training("a", 1, model="lenet", epochs=1)
    assert bad.wait_ended(WAIT)
    s = bad.snapshot()
    assert s.state == "error" and s.news is News.FAILED and s.error == "RuntimeError: the GPU caught fire"
    monkeypatch.undo()
    good = scheduler.submit_training("a", 2, model="lenet", epochs=1)
    assert good.wait_ended(WAIT) and good.snapshot().state == "done"


@pytest.mark.parametrize("params, message", [
    (dict(lr=math.nan), "learning rate must be a finite number"),
    (dict(lr=math.inf), "learning rate must be a finite number"),
    (dict(epochs=math.nan), "epochs must be a finite number"),
    (dict(epochs=31), "epochs must be at most 30"),
    (dict(batch_size=-3), "batch size must be at least 1"),
    (dict(batch_size=301), "batch size must be at most 300"),
    (dict(schedule="cosine"), "unknown schedule 'cosine'"),
    (dict(model="resnet"), "unknown model 'resnet'"),
    (dict(train_limit=5), "unknown training parameter"),  # deployment-only fields are not a visitor's
])
def test_invalid_parameters_queue_nothing(scheduler, params, message):
    with pytest.raises(ValueError, match=message):
        scheduler.submit_training("a", 1, **{"model": "lenet", "epochs": 1, **params})
    assert scheduler.waiting() == [] and scheduler.running is None


def test_a_disabled_deployment_refuses_to_train(mnist):
    s = Scheduler(overrides=SLICE, allow=False)
    with pytest.raises(TrainingDisabled, match="DIGITNET_ALLOW_TRAINING=0"):
        s.submit_training("a", 1, model="lenet", epochs=1)
    assert s.waiting() == []


def test_settings_from_the_environment(monkeypatch):
    for name in ("DIGITNET_MAX_EPOCHS", "DIGITNET_MAX_QUEUE", "DIGITNET_ALLOW_TRAINING"):
        monkeypatch.delenv(name, raising=False)
    assert (settings.max_epochs(), settings.max_queue(), settings.allow_training()) == (30, 20, True)
    monkeypatch.setenv("DIGITNET_MAX_QUEUE", "7")
    monkeypatch.setenv("DIGITNET_ALLOW_TRAINING", "off")
    assert settings.max_queue() == 7 and settings.allow_training() is False
    monkeypatch.setenv("DIGITNET_MAX_EPOCHS", "lots")
    with pytest.raises(ValueError, match="DIGITNET_MAX_EPOCHS must be a whole number"):
        settings.max_epochs()
    monkeypatch.setenv("DIGITNET_MAX_QUEUE", "0")
    with pytest.raises(ValueError, match="DIGITNET_MAX_QUEUE must be at least 1"):
        settings.max_queue()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_the_worker_runs_nicer_than_the_server(scheduler, monkeypatch):
    seen: list[int] = []
    batches = training.mdata.iterate_batches

    def recording(*args, **kwargs):  # runs in the worker thread
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        yield from batches(*args, **kwargs)

    monkeypatch.setattr(training.mdata, "iterate_batches", recording)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    run = scheduler.submit_training("a", 1, model="mlp", epochs=1)
    assert run.wait_ended(WAIT) and run.snapshot().state == "done"
    assert seen and all(nice == min(19, mine + TRAINER_NICENESS) for nice in seen)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller is untouched


def test_a_finished_run_lets_go_of_its_trainer_and_keeps_its_weights(scheduler, monkeypatch):
    """A visitor's finished runs stay listed until they leave: each must not keep its Trainer (the run's copies of
    the training data, its model and optimiser; ~59 MB a full MNIST run), only its weights."""
    import gc
    import weakref

    from digitnet.run import Run

    trainers = []
    attach = Run._attach
    monkeypatch.setattr(Run, "_attach", lambda self, runner: (trainers.append(weakref.ref(runner)), attach(self, runner)))
    run = scheduler.submit_training("a", 1, model="mlp", epochs=1)
    assert run.wait_ended(WAIT) and run.snapshot().state == "done"
    deadline = time.monotonic() + WAIT  # the worker lets go of it once the run's end is published
    while trainers and trainers[0]() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert len(trainers) == 1 and trainers[0]() is None
    assert run.weights and run.weights["state_dict"]  # what the visitor's drawings use stays


def test_the_estimator_learns_a_runs_overhead_and_then_predicts_the_same_run_as_it_took():
    from dataclasses import asdict

    from digitnet.run import Run
    from digitnet.training import EpochMetrics, TrainConfig, TrainResult

    cfg = TrainConfig(model="mlp", epochs=1, train_limit=3_000)
    run = Run("a", 1, "training", "mlp", asdict(cfg), cfg.epochs)
    eta = Estimator()
    steps, batch = run_shape(run.snapshot())
    before, prior_steps = eta.expected(run.snapshot()), steps * eta.step_seconds("mlp", batch)
    # What the run did: 2 validation points, 0.1 s of steps (1.8x the prior); it left the queue 1.0 s before
    # its weights were ready, and its last validation point came 0.5 s after it started.
    history = [EpochMetrics(epoch=e, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5, seconds=0.05, lr=0.1,
                            elapsed=el) for e, el in ((0.5, 0.45), (1, 0.5))]
    eta.learn(run.snapshot(), TrainResult(config=asdict(cfg), history=history, state="done", train_seconds=0.5),
              wall_seconds=1.0)
    assert eta.overhead["mlp"] == pytest.approx(0.9) and eta.finish["mlp"] == pytest.approx(0.5)
    assert eta.expected(run.snapshot()) == pytest.approx(1.0)  # the same run again: what it took
    assert before == pytest.approx(RUN_OVERHEAD_SECONDS + prior_steps)  # the priors, before
    assert "lenet" not in eta.overhead  # another model keeps the prior until one of its runs finishes
    # A running run with its own ETA still has its test pass and checkpoint to come. Its steps left: its own ETA
    # and the estimator's guess, each weighted by the share of the run done (a few steps' pace says little).
    running = run.snapshot()
    running.state, running.eta_seconds, running.done = "running", 3.0, 0.9
    every_step = steps * eta.step_seconds("mlp", batch)  # the learned time of all the run's steps
    assert eta.remaining(running) == pytest.approx(0.9 * 3.0 + 0.1 * (0.1 * every_step) + 0.5)
    running.done = 0.2  # a fifth done: its ETA (3.0 s, a slow start's) counts for a fifth
    assert eta.remaining(running) == pytest.approx(0.2 * 3.0 + 0.8 * (0.8 * every_step) + 0.5)
    running.done = 1.0
    assert eta.remaining(running) == pytest.approx(3.5)


def test_the_estimator_learns_the_pace_after_a_runs_start_not_its_start():
    """The first run of a burst of /train calls: a slow start to its first loss report (the server answered the
    burst first), then the pace of every other run. The queue learns that pace; the start is learned by neither the
    speed nor the overhead, so the next run is expected to take what the run took less its slow start."""
    from dataclasses import asdict

    from digitnet.run import Run
    from digitnet.training import EpochMetrics, TrainConfig, TrainResult

    cfg = TrainConfig(model="mlp", epochs=1, train_limit=3_000)
    run = Run("a", 1, "training", "mlp", asdict(cfg), cfg.epochs)
    steps, batch = run_shape(run.snapshot())
    eta = Estimator()
    pace = 1.5 * eta.step_seconds("mlp", batch)  # seconds a step after the first report (validation included)
    start_steps, start_seconds = 2, 0.1  # 2 steps at the pace would take ~0.01 s
    last = start_seconds + (steps - start_steps) * pace  # the last validation point's elapsed
    history = [EpochMetrics(epoch=e, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5, seconds=last / 2,
                            lr=0.1, elapsed=el) for e, el in ((0.5, last / 2), (1, last))]
    wall = last + 0.3  # the test pass and checkpoint after the last point
    timings = dict(start_seconds=start_seconds, start_steps=start_steps)
    eta.learn(run.snapshot(), TrainResult(config=asdict(cfg), history=history, state="done", train_seconds=last),
              wall_seconds=wall, timings=timings)
    assert eta.overhead["mlp"] == pytest.approx(0.3) and eta.finish["mlp"] == pytest.approx(0.3)
    assert eta.expected(run.snapshot()) == pytest.approx(0.3 + steps * pace)  # not the slow start
    # Without the start's timings (as before), the slow start is taken for the run's speed.
    plain = Estimator()
    plain.learn(run.snapshot(), TrainResult(config=asdict(cfg), history=history, state="done", train_seconds=last),
                wall_seconds=wall)
    assert plain.expected(run.snapshot()) == pytest.approx(wall)


def test_the_estimator_moves_halfway_to_each_later_run():
    from dataclasses import asdict

    from digitnet.eta import LEARN_WEIGHT
    from digitnet.run import Run
    from digitnet.training import EpochMetrics, TrainConfig, TrainResult

    cfg = TrainConfig(model="mlp", epochs=1, train_limit=3_000)
    run = Run("a", 1, "training", "mlp", asdict(cfg), cfg.epochs)
    eta = Estimator()

    def finished(step_seconds: float, wall: float) -> None:  # a run of 2 points, its last 0.5 s after it started
        history = [EpochMetrics(epoch=e, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5, seconds=step_seconds / 2,
                                lr=0.1, elapsed=el) for e, el in ((0.5, 0.45), (1, 0.5))]
        eta.learn(run.snapshot(), TrainResult(config=asdict(cfg), history=history, state="done", train_seconds=0.5),
                  wall_seconds=wall)

    finished(0.1, 1.0)  # the first run of a model sets what it learns: the same run again takes what it took
    assert eta.expected(run.snapshot()) == pytest.approx(1.0)
    speed = eta.speed["mlp"]
    finished(0.2, 2.1)  # a second run, slower (a busy server): half-way there, not all the way
    assert eta.speed["mlp"] == pytest.approx(speed + LEARN_WEIGHT * (2 * speed - speed))
    assert eta.overhead["mlp"] == pytest.approx(0.9 + LEARN_WEIGHT * (1.9 - 0.9))
    assert eta.expected(run.snapshot()) == pytest.approx(1.0 + LEARN_WEIGHT * (2.1 - 1.0))


def test_a_finished_run_teaches_the_queue_its_real_overhead(scheduler):
    run = scheduler.submit_training("a", 1, model="mlp", epochs=1)
    assert run.wait_ended(WAIT) and run.snapshot().state == "done"
    learned = scheduler.eta.overhead["mlp"]
    history = run.snapshot().history
    # Leaving the queue to weights ready, less the steps: at least the set-up and test pass after the last point.
    assert 0 < scheduler.eta.finish["mlp"] <= learned
    assert learned >= history[-1]["elapsed"] - sum(m["seconds"] for m in history) > 0
    second = scheduler.submit_training("a", 2, model="mlp", epochs=1)
    steps, batch = run_shape(second.snapshot())
    # The same run again: its learned overhead plus its steps at the learned speed (= what the first one
    # took, unless this machine was over 3x off the speed prior and the learned speed was clamped).
    assert scheduler.expected_seconds(second) == pytest.approx(learned + steps * scheduler.eta.step_seconds("mlp", batch))
    assert learned != RUN_OVERHEAD_SECONDS
