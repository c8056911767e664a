"""What a run reports through its callback (``BatchProgress``, ``EpochMetrics``, ``TrainResult``) and
the fixed digits whose answers the Train tab shows changing (``PROBE_INDICES``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class BatchProgress:
    """Reported every ``log_every`` batches and at the end of each epoch."""

    epoch: int  # 1-based
    epochs: float  # the run's length: 1.5 ends halfway through epoch 2
    batch: int  # 1-based, within the epoch
    batches: int  # this epoch's batches (fewer in a last, partial epoch)
    train_loss: float  # mean loss over the batches since the last report
    samples_per_second: float
    eta_seconds: float | None  # until the end of the whole run; None at the first report (its pace is measured after it)
    elapsed: float  # seconds since training started
    done: float  # epochs done so far, e.g. 1.25 (the x of a curve point)


@dataclass
class EpochMetrics:
    """A validation point: the history that curves and ``/status`` show (several per epoch in short runs)."""

    epoch: float  # epochs done at this point: 0.125, ..., 1, ... (1.5 after a last half epoch)
    train_loss: float  # mean training loss since the previous point
    train_acc: float  # 0..1, since the previous point
    val_loss: float
    val_acc: float  # 0..1
    seconds: float  # wall time since the previous point (the start of training for the first), validation included
    lr: float  # learning rate at this point
    val_images: int = 0  # validation images it used: a fixed subset, all of them at the run's last point
    epoch_end: bool = True  # the point closes an epoch (or the run's last, partial one)
    probe: list[int] | None = None  # the model's answers for the PROBE_INDICES test digits
    own: float | None = None  # the model's probability for the visitor's own drawing's digit (TrainingRun.own)
    elapsed: float = 0.0  # seconds since the run started (data loading included), as BatchProgress.elapsed


# A fixed grid of MNIST test digits whose answers the Train tab shows changing as a model learns:
# the first 0, 1, ..., 9 of the test set, then six hard ones (a 6, 5, 4, 9, 8 and 2 that one or two
# of the three shipped models misread; LeNet reads them right, with 60-95% confidence). Test images
# are only shown, never used to choose anything.
PROBE_INDICES = (3, 2, 1, 18, 4, 8, 11, 0, 61, 7, 445, 674, 1242, 2582, 2896, 1790)


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    config: dict
    history: list[EpochMetrics]
    state: str  # "done" or "stopped"
    train_seconds: float
    test_acc: float | None = None
    test_loss: float | None = None
    confusion: list[list[int]] | None = None  # [true][predicted], 10x10
    misclassified: list[dict] = field(default_factory=list)  # {index, true, pred, prob}
    checkpoint: str | None = None
    # Softmax temperature fitted on the validation split after the run (digitnet.calibrate);
    # 1.0 (uncalibrated) when there was no validation split or the run stopped.
    temperature: float = 1.0

    def to_dict(self) -> dict:
        """A JSON-friendly dict."""
        out = asdict(self)
        out["history"] = [asdict(m) for m in self.history]
        return out
