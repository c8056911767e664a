"""The shared training job (digitnet/job.py): refusals, errors in the thread, shipped-weight backup and restore."""

from __future__ import annotations

import math
import os
import sys
import threading
import time

import pytest

import digitnet.training as training
from digitnet.checkpoint import load_checkpoint, save_checkpoint
from digitnet.job import (
    ORIGINALS_DIR, TRAINER_NICENESS, JobBusy, TrainingDisabled, TrainingJob, max_epochs_from_env,
)
from digitnet.models import build_model

TINY = dict(train_limit=300, val_size=100, test_limit=100)  # a run takes well under a second


@pytest.fixture
def shipped_dir(tmp_path):
    """A stand-in for the repo's checkpoints/ holding an 'original' MLP checkpoint."""
    folder = tmp_path / "shipped"
    save_checkpoint(folder / "mlp.pt", build_model("mlp"), "mlp", 0.1307, 0.3081, {"test_acc": 0.5}, {"tag": "shipped"})
    return folder


def make_job(mnist, shipped_dir, checkpoints, **kw) -> tuple[TrainingJob, list[str]]:
    saved: list[str] = []
    job = TrainingJob(checkpoints=checkpoints, shipped_dir=shipped_dir, overrides=TINY, threads=1,
                      on_saved=saved.append, **kw)
    return job, saved


def test_training_over_the_shipped_file_keeps_the_original_and_restore_brings_it_back(mnist, shipped_dir):
    original = (shipped_dir / "mlp.pt").read_bytes()
    # DIGITNET_CHECKPOINTS is the shipped folder itself (the default ./checkpoints in the repo).
    job, saved = make_job(mnist, shipped_dir, checkpoints=shipped_dir)
    job.start(model="mlp", epochs=1)
    assert job.join(60) and job.snapshot().state == "done", job.snapshot().message
    assert saved == ["mlp"]  # hot-swapped into the model cache
    assert (shipped_dir / "mlp.pt").read_bytes() != original  # the run replaced the shipped file...
    assert (shipped_dir / ORIGINALS_DIR / "mlp.pt").read_bytes() == original  # ...after keeping a copy
    assert (shipped_dir / ORIGINALS_DIR / ".gitignore").read_text().strip().endswith("*")
    # A second run must not overwrite the kept original with the first run's weights.
    job.start(model="mlp", epochs=1)
    assert job.join(60) and job.snapshot().state == "done"
    assert (shipped_dir / ORIGINALS_DIR / "mlp.pt").read_bytes() == original

    assert "Restored the shipped MLP weights" in job.restore_shipped("mlp")
    assert (shipped_dir / "mlp.pt").read_bytes() == original
    assert not (shipped_dir / ORIGINALS_DIR / "mlp.pt").exists()
    assert saved == ["mlp", "mlp", "mlp"]
    assert "already uses its shipped weights" in job.restore_shipped("mlp")


def test_training_into_another_folder_never_touches_the_shipped_file(mnist, shipped_dir, tmp_path):
    original = (shipped_dir / "mlp.pt").read_bytes()
    trained_dir = tmp_path / "trained"
    job, _ = make_job(mnist, shipped_dir, checkpoints=trained_dir)
    job.start(model="mlp", epochs=1)
    assert job.join(60) and job.snapshot().state == "done"
    assert (shipped_dir / "mlp.pt").read_bytes() == original
    assert not (shipped_dir / ORIGINALS_DIR).exists()
    assert load_checkpoint(trained_dir / "mlp.pt")["config"]["train_limit"] == TINY["train_limit"]
    job.restore_shipped("mlp")
    assert (trained_dir / "mlp.pt").read_bytes() == original


def test_an_error_in_the_training_thread_is_reported_and_the_next_run_works(mnist, shipped_dir, tmp_path,
                                                                           monkeypatch):
    job, saved = make_job(mnist, shipped_dir, checkpoints=tmp_path / "ck")

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(training, "build_model", broken)
    job.start(model="lenet", epochs=1)
    assert job.join(60)
    s = job.status()
    assert s["state"] == "error" and "the GPU caught fire" in s["message"] and "LeNet" in s["message"]
    assert saved == []
    monkeypatch.undo()
    job.start(model="lenet", epochs=1)  # the lock was released
    assert job.join(60) and job.status()["state"] == "done"


def test_a_second_start_is_refused_with_the_running_model_and_epoch(mnist, shipped_dir, tmp_path, monkeypatch):
    job, _ = make_job(mnist, shipped_dir, checkpoints=tmp_path / "ck")
    batches = training.mdata.iterate_batches

    def slow_batches(*args, **kwargs):  # a run of 30 tiny epochs takes >= 2 s on any machine
        for batch in batches(*args, **kwargs):
            time.sleep(0.02)
            yield batch

    monkeypatch.setattr(training.mdata, "iterate_batches", slow_batches)
    job.start(model="mlp", epochs=30)
    try:
        with pytest.raises(JobBusy, match=r"^MLP is already training \(epoch \d+/30\)$"):
            job.start(model="lenet", epochs=1)
        with pytest.raises(JobBusy, match="stop it first"):
            job.restore_shipped("mlp")
    finally:
        s = job.stop()
    assert s.state == "stopped" and len(s.history) < 30
    assert not (tmp_path / "ck" / "mlp.pt").exists()


@pytest.mark.parametrize("params, message", [
    (dict(lr=math.nan), "learning rate must be a finite number"),
    (dict(lr=math.inf), "learning rate must be a finite number"),
    (dict(epochs=2.5), "epochs must be a whole number"),
    (dict(batch_size=-3), "batch size must be at least 1"),
    (dict(batch_size=301), "batch size must be at most 300"),
    (dict(schedule="cosine"), "unknown schedule 'cosine'"),
    (dict(train_limit=5), "unknown training parameter"),  # deployment-only fields are not a visitor's
])
def test_invalid_parameters_start_nothing(mnist, shipped_dir, tmp_path, params, message):
    job, _ = make_job(mnist, shipped_dir, checkpoints=tmp_path / "ck")
    with pytest.raises(ValueError, match=message):
        job.start(**{"model": "lenet", "epochs": 1, **params})
    assert job.status()["state"] == "idle"


def test_disabled_job_refuses_to_train(shipped_dir, tmp_path):
    job = TrainingJob(checkpoints=tmp_path, shipped_dir=shipped_dir, allow=False)
    with pytest.raises(TrainingDisabled, match="DIGITNET_ALLOW_TRAINING=0"):
        job.start(model="lenet", epochs=1)
    assert job.stop().state == "idle"


def test_max_epochs_from_env(monkeypatch):
    monkeypatch.delenv("DIGITNET_MAX_EPOCHS", raising=False)
    assert max_epochs_from_env() == 30
    monkeypatch.setenv("DIGITNET_MAX_EPOCHS", "7")
    assert max_epochs_from_env() == 7
    monkeypatch.setenv("DIGITNET_MAX_EPOCHS", "lots")
    with pytest.raises(ValueError, match="DIGITNET_MAX_EPOCHS must be a whole number"):
        max_epochs_from_env()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_the_training_thread_runs_nicer_than_the_server(mnist, shipped_dir, tmp_path, monkeypatch):
    seen: list[int] = []
    batches = training.mdata.iterate_batches

    def recording(*args, **kwargs):  # runs in the training thread
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        yield from batches(*args, **kwargs)

    monkeypatch.setattr(training.mdata, "iterate_batches", recording)
    job, _ = make_job(mnist, shipped_dir, checkpoints=tmp_path / "ck")
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    job.start(model="mlp", epochs=1)
    assert job.join(60) and job.status()["state"] == "done"
    assert seen and all(nice == min(19, mine + TRAINER_NICENESS) for nice in seen)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller is untouched
