"""The app's one shared training job: start, stop, live state, hot-swap and shipped-weight restore.

The app holds a single ``TrainingJob`` for every visitor: a second start while a run is
going is refused with a message naming the run ("LeNet is already training (epoch 2/5)").
A run is either a training run (``start``) or a fine-tune on a visitor's own digits
(``start_finetune``, a ``digitnet.finetune.FineTuner``); both report the same events, so
the Train tab's live view, /status, the hot-swap and the shipped-original copy are shared.
The ``Trainer`` reports through a callback in its own thread; this class keeps the live
state (running loss points, per-epoch history, the final result) behind a lock and hands
out copies, so any number of browser tabs can poll it. It never imports gradio.

Shipped weights: by default ``DIGITNET_CHECKPOINTS`` is ``./checkpoints``, the very folder
that holds the repo's shipped ``<name>.pt``. Before a run may overwrite a shipped file,
the original is copied once into ``<shipped>/.shipped-originals/`` (a folder that ignores
itself in git); "restore shipped weights" copies it back and forgets the copy. When
``DIGITNET_CHECKPOINTS`` is another folder, the shipped file is never touched and restore
copies it over the trained one.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import data as mdata
from .checkpoint import SHIPPED_DIR, checkpoint_dir, checkpoint_path
from .finetune import FineTuneConfig, FineTuner, MyDigits
from .models import DISPLAY_NAMES, check_model_name
from .training import BatchProgress, EpochMetrics, TrainConfig, Trainer, TrainResult, usable_cores

MNIST_TRAIN_IMAGES = 60_000  # train + validation images in MNIST's training file
MNIST_TEST_IMAGES = 10_000
DEFAULT_MAX_EPOCHS = 30  # DIGITNET_MAX_EPOCHS when unset: ~10 minutes of LeNet on 2 cores
STOP_WAIT_SECONDS = 10.0  # stop() waits this long for the thread; it stops before the next batch
ORIGINALS_DIR = ".shipped-originals"  # under the shipped folder; holds pre-training copies
# The training thread runs this much "nicer" than the server's threads (Linux: nice is per
# thread, and threads it starts inherit it): a visitor's drawing preempts training at once,
# while training alone still gets every core it asked for.
TRAINER_NICENESS = 10
# Fewer digits than this teach a model nothing it keeps (each batch would repeat the same
# three drawings 16 times); the app asks for a few more corrections instead.
MIN_FINETUNE_DIGITS = 5
# Deployment-wide TrainConfig overrides that also bound a fine-tune's MNIST evaluation.
SHARED_EVAL_OVERRIDES = ("test_limit",)

# The parameters a visitor may set (the Train tab's controls and /train's keywords).
# Everything else (data slices, threads, device) is the deployment's choice.
TRAIN_PARAMS = (
    "model", "epochs", "batch_size", "optimizer", "lr", "momentum", "schedule",
    "step_size", "gamma", "weight_decay", "dropout", "augment", "seed",
)


class JobBusy(RuntimeError):
    """A training run is already going; nothing was started."""


class TrainingDisabled(RuntimeError):
    """This deployment does not allow training (DIGITNET_ALLOW_TRAINING=0)."""


def allow_training_from_env() -> bool:
    """``DIGITNET_ALLOW_TRAINING``: anything but 0/false/no/off allows training (default: allowed)."""
    return os.environ.get("DIGITNET_ALLOW_TRAINING", "1").strip().lower() not in ("0", "false", "no", "off")


def max_epochs_from_env() -> int:
    """``DIGITNET_MAX_EPOCHS`` (default 30); a malformed value is an error that names the variable."""
    raw = os.environ.get("DIGITNET_MAX_EPOCHS", "").strip()
    if not raw:
        return DEFAULT_MAX_EPOCHS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"DIGITNET_MAX_EPOCHS must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"DIGITNET_MAX_EPOCHS must be at least 1, got {value}")
    return value


def default_train_threads() -> int:
    """Torch threads for a training run while the app serves: every usable core.

    Drawing stays quick because the training thread (and the OpenMP workers it starts)
    runs ``TRAINER_NICENESS`` levels nicer, so a drawing's few milliseconds preempt it;
    benchmarks/RESULTS-app.md measured /predict as quick during training as idle with two
    trainer threads on two cores. With OpenMP, ``torch.set_num_threads`` applies to the
    calling thread, so the Trainer sets it inside its own thread and the app's inference
    handlers set their own (digitnet/predict.py).
    """
    return usable_cores()


def lower_thread_priority(increment: int) -> bool:
    """Raise the calling thread's nice value by ``increment`` (Linux only); False where unsupported."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
        return True
    except (AttributeError, OSError):  # a sandbox without setpriority: run at normal priority
        return False


class _LowPriority:
    """Mixin for Trainer-like classes: the run's thread lowers its own priority before working.

    Takes a ``niceness`` keyword beside the class's own arguments.
    """

    def __init__(self, *args, niceness: int = TRAINER_NICENESS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.niceness = niceness

    def _run_catching(self) -> None:  # the thread's target in Trainer.start() / FineTuner.start()
        lower_thread_priority(self.niceness)
        super()._run_catching()  # type: ignore[misc]


class _BackgroundTrainer(_LowPriority, Trainer):
    """A Trainer whose thread runs at lower priority."""


class _BackgroundFineTuner(_LowPriority, FineTuner):
    """A FineTuner whose thread runs at lower priority."""


@dataclass
class JobSnapshot:
    """A copy of the job's state at one moment, for the UI and /status."""

    version: int  # grows with every change; pollers skip redrawing when it is unchanged
    state: str  # idle, running, done, stopped, error
    model: str | None
    epoch: int
    epochs: int
    batch: int
    batches: int
    eta_seconds: float | None
    elapsed: float
    message: str
    history: list[dict] = field(default_factory=list)  # EpochMetrics as dicts
    loss_points: list[tuple[float, float]] = field(default_factory=list)  # (epochs done, running loss)
    result: TrainResult | None = None
    run_id: int = 0  # one per started run: results are redrawn once per run
    config: dict = field(default_factory=dict)
    kind: str = "training"  # "training" (start) or "finetune" (start_finetune)
    finetune: dict | None = None  # a finished fine-tune: personal digits, accuracy on them before/after, ...

    def status(self) -> dict:
        """The /status JSON (DESIGN.md): state, model, epoch, epochs, history, test_acc, message, ..."""
        result = self.result
        return {
            "state": self.state,
            "model": self.model,
            "epoch": self.epoch,
            "epochs": self.epochs,
            "batch": self.batch,
            "batches": self.batches,
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "elapsed_seconds": round(self.elapsed, 1),
            "history": self.history,
            "running_loss": [[round(x, 4), loss] for x, loss in self.loss_points],
            "test_acc": result.test_acc if result else None,
            "checkpoint": result.checkpoint if result else None,
            "message": self.message,
            "kind": self.kind,
            "finetune": self.finetune,
        }


def _json_float(value: float) -> float | None:
    """NaN/inf (e.g. validation loss with no validation set) become None in JSON."""
    return float(value) if value is not None and math.isfinite(value) else None


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temp file and ``os.replace``: readers never see half a file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def misclassified_images(result: TrainResult, data_root: str | os.PathLike | None = None,
                         limit: int = 24) -> list[tuple[np.ndarray, str]]:
    """The most confident test mistakes as (28x28 uint8 image, "true 4, predicted 9 (87%)")."""
    if not result.misclassified:
        return []
    images = mdata.load_mnist(data_root).test_images  # cached: no second read of the files
    return [
        (images[m["index"]].numpy(), f"true {m['true']}, predicted {m['pred']} ({m['prob']:.0%})")
        for m in result.misclassified[:limit]
    ]


class TrainingJob:
    """The single shared training run of an app: thread-safe start/stop/snapshot."""

    def __init__(
        self,
        checkpoints: str | os.PathLike | None = None,
        data_root: str | os.PathLike | None = None,
        shipped_dir: str | os.PathLike = SHIPPED_DIR,
        overrides: dict | None = None,
        max_epochs: int = DEFAULT_MAX_EPOCHS,
        threads: int | None = None,
        niceness: int = TRAINER_NICENESS,
        allow: bool = True,
        on_saved: Callable[[str], None] | None = None,
        finetune_overrides: dict | None = None,
    ) -> None:
        """``checkpoints`` None means ``$DIGITNET_CHECKPOINTS`` (read at each start); ``overrides``
        are deployment-side TrainConfig fields (e.g. ``train_limit`` for tests); ``on_saved(name)``
        runs after a finished run saved its checkpoint (the app hot-swaps the model there);
        ``finetune_overrides`` are FineTuneConfig fields for fine-tunes (``overrides``'
        ``test_limit`` applies to them too unless given here)."""
        self.checkpoints = checkpoints
        self.data_root = data_root
        self.shipped_dir = Path(shipped_dir)
        self.overrides = dict(overrides or {})
        unknown = set(self.overrides) - set(TrainConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown TrainConfig override(s): {', '.join(sorted(unknown))}")
        shared = {k: v for k, v in self.overrides.items() if k in SHARED_EVAL_OVERRIDES}
        self.finetune_overrides = {**shared, **(finetune_overrides or {})}
        unknown = set(self.finetune_overrides) - set(FineTuneConfig.__dataclass_fields__) | \
            ({"model", "max_epochs", "threads"} & set(finetune_overrides or {}))
        if unknown:
            raise ValueError(f"unknown or reserved FineTuneConfig override(s): {', '.join(sorted(unknown))}")
        self.max_epochs = max_epochs
        self.threads = default_train_threads() if threads is None else threads
        self.niceness = niceness
        self.allow = allow
        self.on_saved = on_saved
        self._lock = threading.RLock()
        self._trainer: Trainer | None = None
        self._snap = JobSnapshot(version=0, state="idle", model=None, epoch=0, epochs=0, batch=0, batches=0,
                                 eta_seconds=None, elapsed=0.0, message="No training has run yet.")

    # ---- queries -------------------------------------------------------------------------------

    def snapshot(self) -> JobSnapshot:
        """A consistent copy of the live state (lists copied, so callers may keep it)."""
        with self._lock:
            s = self._snap
            return JobSnapshot(**{**s.__dict__, "history": list(s.history), "loss_points": list(s.loss_points),
                                  "config": dict(s.config)})

    def status(self) -> dict:
        """The /status JSON."""
        return self.snapshot().status()

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        with self._lock:
            return self._snap.state == "running"

    def busy_message(self) -> str | None:
        """"LeNet is already training (epoch 2/5)" while a run goes, else None."""
        with self._lock:
            s = self._snap
            if s.state != "running":
                return None
            if s.kind == "finetune":
                return (f"{DISPLAY_NAMES[s.model]} is already training "
                        f"(a fine-tune on someone's digits, round {max(s.epoch, 1)}/{s.epochs})")
            return f"{DISPLAY_NAMES[s.model]} is already training (epoch {max(s.epoch, 1)}/{s.epochs})"

    def config_for(self, **params) -> TrainConfig:
        """Validate a visitor's parameters into a TrainConfig; ValueError with a clear message."""
        unknown = set(params) - set(TRAIN_PARAMS)
        if unknown:
            raise ValueError(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
        values = {k: v for k, v in params.items() if v is not None}
        cfg = TrainConfig(**{**values, **self.overrides, "max_epochs": self.max_epochs, "threads": self.threads})
        # The Trainer knows the training-set size only after loading MNIST in its thread; compute
        # it here so a batch larger than the data is refused before anything starts.
        n_train = MNIST_TRAIN_IMAGES - cfg.val_size
        if cfg.train_limit is not None:
            n_train = min(n_train, cfg.train_limit)
        return cfg.validate(n_train=n_train)

    def checkpoint_folder(self) -> Path:
        """Where runs save: the folder given, else ``$DIGITNET_CHECKPOINTS``, else the shipped folder.

        The last is what ``./checkpoints`` means when the app runs from the repo, and it is
        where the model cache reads (``digitnet.predict.checkpoint_for``) whatever the cwd.
        """
        if self.checkpoints is not None or os.environ.get("DIGITNET_CHECKPOINTS"):
            return checkpoint_dir(self.checkpoints)
        return self.shipped_dir

    # ---- actions -------------------------------------------------------------------------------

    def _refuse_if_busy(self) -> None:
        """Raise JobBusy naming the run that is going, if any (call with the lock held)."""
        busy = self.busy_message()
        if busy:
            raise JobBusy(busy)

    def _refuse_if_cannot_start(self) -> None:
        """Raise TrainingDisabled on a read-only deployment, JobBusy while a run goes."""
        if not self.allow:
            raise TrainingDisabled("Training is turned off on this deployment (DIGITNET_ALLOW_TRAINING=0).")
        with self._lock:
            self._refuse_if_busy()

    def start(self, **params) -> JobSnapshot:
        """Start a run in the background and return at once; JobBusy/TrainingDisabled/ValueError refuse."""
        self._refuse_if_cannot_start()
        cfg = self.config_for(**params)
        folder = self.checkpoint_folder()
        with self._lock:
            self._refuse_if_busy()  # checked again: another request may have started meanwhile
            self._keep_shipped_original(cfg.model, folder)
            trainer = _BackgroundTrainer(cfg, callback=self._on_event, checkpoint_dir=folder, data_root=self.data_root,
                                         niceness=self.niceness)
            name = DISPLAY_NAMES[cfg.model]
            self._trainer = trainer
            self._snap = JobSnapshot(
                version=self._snap.version + 1, state="running", model=cfg.model, epoch=1, epochs=cfg.epochs,
                batch=0, batches=0, eta_seconds=None, elapsed=0.0,
                message=f"{name}: training for {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}...",
                run_id=self._snap.run_id + 1, config=asdict(cfg),
            )
            trainer.start()
            return self.snapshot()

    def finetune_config(self, model: str) -> FineTuneConfig:
        """The FineTuneConfig for ``model`` with this deployment's overrides; ValueError if invalid."""
        return FineTuneConfig.from_dict({**self.finetune_overrides, "model": model, "threads": self.threads}).validate()

    def start_finetune(self, digits: MyDigits, model: str) -> JobSnapshot:
        """Fine-tune ``model`` on a visitor's digits (mixed with MNIST) in the background; returns at once.

        Refuses like ``start``: JobBusy while any run goes, TrainingDisabled, ValueError
        (``MyDigitsError``) for fewer than MIN_FINETUNE_DIGITS digits or invalid ones. The
        result is saved where training saves (the shipped original kept first) and hot-swapped.
        """
        self._refuse_if_cannot_start()
        digits = list(digits or [])
        if len(digits) < MIN_FINETUNE_DIGITS:
            raise ValueError(f"Fine-tuning needs at least {MIN_FINETUNE_DIGITS} of your digits; you have "
                             f"{len(digits)}. Correct a few more predictions with \"Add to my digits\" first.")
        cfg = self.finetune_config(model)
        folder = self.checkpoint_folder()
        with self._lock:
            self._refuse_if_busy()  # checked again: another request may have started meanwhile
            self._keep_shipped_original(cfg.model, folder)
            # Validates the digits and finds the checkpoint to start from (the one the Draw tab uses).
            tuner = _BackgroundFineTuner(cfg, digits, callback=self._on_event, checkpoint_dir=folder,
                                         data_root=self.data_root, niceness=self.niceness)
            self._trainer = tuner
            self._snap = JobSnapshot(
                version=self._snap.version + 1, state="running", model=cfg.model, epoch=1, epochs=cfg.epochs,
                batch=0, batches=0, eta_seconds=None, elapsed=0.0,
                message=(f"{DISPLAY_NAMES[cfg.model]}: fine-tuning on {len(digits)} personal digits mixed with MNIST "
                         f"({cfg.epochs} rounds of {cfg.steps_per_epoch} steps)..."),
                run_id=self._snap.run_id + 1, config=asdict(cfg), kind="finetune",
            )
            tuner.start()
            return self.snapshot()

    def stop(self, wait: float = STOP_WAIT_SECONDS) -> JobSnapshot:
        """Ask the run to stop before its next batch and wait (up to ``wait`` s) until it has."""
        with self._lock:
            trainer = self._trainer if self._snap.state == "running" else None
        if trainer is None:
            return self.snapshot()
        trainer.stop()
        trainer.join(wait)
        return self.snapshot()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the current run's thread; True when none is running."""
        trainer = self._trainer
        return trainer.join(timeout) if trainer is not None else True

    def restore_shipped(self, name: str) -> str:
        """Bring back the repo's checkpoint for ``name``; returns a message. Calls ``on_saved``."""
        if not self.allow:
            raise TrainingDisabled("Training is turned off on this deployment (DIGITNET_ALLOW_TRAINING=0).")
        name = check_model_name(name)
        display = DISPLAY_NAMES[name]
        with self._lock:
            if self._snap.state == "running" and self._snap.model == name:
                raise JobBusy(f"{display} is training right now: stop it first, then restore its shipped weights.")
            active = checkpoint_path(name, self.checkpoint_folder())
            shipped = self.shipped_dir / f"{name}.pt"
            original = self.shipped_dir / ORIGINALS_DIR / f"{name}.pt"
            if _same_file(active, shipped):
                if not original.is_file():
                    return f"{display} already uses its shipped weights."
                _copy_atomic(original, shipped)
                original.unlink()
            else:
                if not shipped.is_file():
                    raise FileNotFoundError(f"no shipped checkpoint for {display} at {shipped}")
                _copy_atomic(shipped, active)
        if self.on_saved is not None:
            self.on_saved(name)
        with self._lock:
            self._snap.version += 1
            if self._snap.state != "running":
                self._snap.message = f"Restored the shipped {display} weights; the Draw tab uses them now."
        return f"Restored the shipped {display} weights; the Draw tab uses them now."

    # ---- internals -----------------------------------------------------------------------------

    def _keep_shipped_original(self, name: str, folder: Path) -> None:
        """Before a run may overwrite a shipped checkpoint, keep a copy of the original (once)."""
        target = checkpoint_path(name, folder)
        shipped = self.shipped_dir / f"{name}.pt"
        if not shipped.is_file() or not _same_file(target, shipped):
            return
        originals = self.shipped_dir / ORIGINALS_DIR
        if (originals / f"{name}.pt").is_file():
            return  # the copy already holds the original; the current file may be a trained one
        originals.mkdir(parents=True, exist_ok=True)
        ignore = originals / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# copies of shipped checkpoints kept by the app before training overwrote them\n*\n")
        _copy_atomic(shipped, originals / f"{name}.pt")

    def _on_event(self, event: object) -> None:
        """Trainer callback (training thread): fold each event into the shared state."""
        if isinstance(event, TrainResult):
            self._finish(event)
            return
        with self._lock:
            s = self._snap
            if isinstance(event, BatchProgress):
                s.epoch, s.epochs, s.batch, s.batches = event.epoch, event.epochs, event.batch, event.batches
                s.eta_seconds, s.elapsed = event.eta_seconds, event.elapsed
                s.loss_points.append((event.epoch - 1 + event.batch / event.batches, event.train_loss))
                s.message = (f"{DISPLAY_NAMES[s.model]}: epoch {event.epoch}/{event.epochs}, batch "
                             f"{event.batch}/{event.batches}, {event.samples_per_second:,.0f} images/s")
            elif isinstance(event, EpochMetrics):
                row = {k: _json_float(v) if isinstance(v, float) else v for k, v in asdict(event).items()}
                s.history.append(row)
            elif isinstance(event, BaseException):
                trainer = self._trainer
                detail = (trainer.error if trainer is not None and trainer.error else None) or str(event) or type(event).__name__
                s.state = "error"
                s.eta_seconds = None
                s.message = f"{DISPLAY_NAMES[s.model]} training failed: {detail}"
            s.version += 1

    def _finish(self, result: TrainResult) -> None:
        """A run ended (done or stopped): hot-swap a saved checkpoint, then publish the result."""
        name = self._snap.model
        display = DISPLAY_NAMES[name]
        info = getattr(self._trainer, "finetune_info", None) if self._snap.kind == "finetune" else None
        if result.state == "done":
            swap = ""
            if result.checkpoint and self.on_saved is not None:
                try:
                    self.on_saved(name)
                    swap = " The Draw tab uses it from the next drawing on."
                except Exception as exc:  # the file is saved; say why the Draw tab could not load it
                    swap = f" But the Draw tab could not load it: {exc}"
            acc = f"test accuracy {result.test_acc:.2%}" if result.test_acc is not None else "no test set"
            saved = f" Saved {result.checkpoint}." if result.checkpoint else ""
            if info is not None:
                before = info.get("base_test_acc")
                # The checkpoint's figure is on the whole test set; a deployment's slice is not comparable.
                if isinstance(before, float) and info.get("test_images") == MNIST_TEST_IMAGES:
                    mnist = f"MNIST test accuracy {before:.2%} -> {result.test_acc:.2%}"
                else:
                    mnist = f"MNIST test accuracy {result.test_acc:.2%} (on {info.get('test_images')} test images)"
                message = (f"{display} fine-tuned on {info['personal_digits']} personal digits in "
                           f"{result.train_seconds:.0f} s: your digits {info['personal_acc_before']:.0%} -> "
                           f"{info['personal_acc_after']:.0%} right, {mnist}.{saved}{swap}")
            else:
                message = f"{display} finished in {result.train_seconds:.0f} s: {acc}.{saved}{swap}"
        else:
            epochs_done = len(result.history)
            unit = "round" if self._snap.kind == "finetune" else "epoch"
            message = (f"{display} stopped after {epochs_done} full {unit}{'s' if epochs_done != 1 else ''}; "
                       "nothing was saved and the Draw tab keeps its weights.")
        with self._lock:
            s = self._snap
            s.result = result
            s.state = result.state
            s.eta_seconds = None
            s.message = message
            s.finetune = None if info is None else {k: v for k, v in info.items() if k != "history"}
            s.version += 1


def _same_file(a: Path, b: Path) -> bool:
    """True when both paths name the same file location (whether or not it exists yet)."""
    return os.path.normcase(os.path.abspath(a.parent.resolve() / a.name)) == \
        os.path.normcase(os.path.abspath(b.parent.resolve() / b.name))
