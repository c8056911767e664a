"""``TrainConfig`` (one source for every hyperparameter of a run from scratch), each model's fast
recipe, the seed article's recipe, and the choices the form and the command line offer."""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import data as mdata
from .config import Config, setting
from .models import DEFAULT_MODEL, DISPLAY_NAMES, FAST_RECIPES, MODELS

MODEL_CHOICES = tuple((DISPLAY_NAMES[name], name) for name in MODELS)
OPTIMIZER_CHOICES = (("SGD + momentum", "sgd"), ("Adam", "adam"), ("AdamW", "adamw"))
SCHEDULE_CHOICES = (("constant", "none"), ("StepLR (the seed article's)", "step"), ("one-cycle", "onecycle"))
DEVICE_CHOICES = (("auto", "auto"), ("CPU", "cpu"), ("CUDA", "cuda"))


# FAST_RECIPES: each model's fast recipe, from its registry entry (models.py says how each was chosen).
# A TrainConfig whose epochs, batch_size, lr, freeze or freeze_from is None takes its model's value there.


@dataclass
class TrainConfig(Config):
    """Everything that defines a training run. The defaults are the fast recipe (``FAST_RECIPES``: each model's
    length, batch, learning rate and FreezeOut)."""

    model: str = setting(DEFAULT_MODEL, "model to train", choices=MODEL_CHOICES, visitor=True, required=True)
    # A part of an epoch is allowed: 1.5 = one pass over the training images and half of another.
    epochs: float | None = setting(None, "number of epochs, 1.5 = one pass and half of another (default: the "
                                   "model's fast recipe, FAST_RECIPES)", lo=0.5, hi="max_epochs", visitor=True,
                                   step=0.5, required=True)
    batch_size: int | None = setting(None, "images per training step (default: the model's fast recipe)", lo=1,
                                     visitor=True)
    optimizer: str = setting("adamw", "SGD with momentum (the seed's), Adam or AdamW", choices=OPTIMIZER_CHOICES,
                             visitor=True)
    # The peak of the one-cycle schedule (the seed: SGD at 0.01).
    lr: float | None = setting(None, "(peak) learning rate (default: the model's fast recipe)", label="learning rate",
                               lo=0, lo_open=True, hi=10, visitor=True)
    schedule: str = setting("onecycle", "learning-rate schedule: constant, the seed's StepLR, or one-cycle (per batch)",
                            choices=SCHEDULE_CHOICES, visitor=True)
    weight_decay: float = setting(5e-4, "weight decay", lo=0, hi=1, visitor=True)
    # Cross-entropy against (1 - s) one-hot + s uniform: +0.1 point of validation accuracy in
    # one- and two-epoch runs (it keeps the short run from chasing over-confident logits).
    label_smoothing: float = setting(0.1, "cross-entropy label smoothing", lo=0, hi=0.5, visitor=True, step=0.05)
    dropout: float = setting(0.0, "dropout probability", lo=0, hi=0.9, visitor=True, step=0.05)
    # Off by default: in a run of an epoch or two it cost LeNet accuracy and time (measured on test by an
    # earlier session, not re-checked on validation); it pays in longer runs (the shipped files use it).
    augment: bool = setting(False, "random small rotations/shifts/scales/shears of each batch (never flips)",
                            label="augmentation", visitor=True)
    # FreezeOut (Brock et al., 2017): a model's first layers settle early, and once they stop training
    # the backward pass skips them: a LeNet step with both conv blocks frozen costs about half of a
    # full one (benchmarks/RESULTS-speed.md).
    freeze: bool | None = setting(None, "FreezeOut: stop training the feature blocks one after another during "
                                  "the run, from freeze_from on (default: the model's fast recipe)",
                                  label="FreezeOut", visitor=True)
    # Where FreezeOut starts: the first block stops after this part of the run's steps, the others at
    # even steps from there to the end (None and no recipe value: block k of K at k/(K+1), i.e. thirds).
    freeze_from: float | None = setting(None, "FreezeOut: the part of the run after which the first feature block "
                                        "stops training, the next ones evenly spaced after it (default: the "
                                        "model's fast recipe, else thirds)",
                                        label="FreezeOut start", lo=0, hi=1, lo_open=True, hi_open=True)
    seed: int = setting(0, "random seed", lo=0, hi=2**31 - 1, visitor=True)
    momentum: float = setting(0.9, "momentum (SGD only)", lo=0, hi=1, visitor=True, advanced=True)
    step_size: int = setting(5, "StepLR: epochs between decays (the seed: 5)", label="StepLR step size", lo=1,
                             visitor=True, advanced=True)
    gamma: float = setting(0.5, "StepLR: decay factor (the seed: 0.5)", label="StepLR gamma", lo=0, lo_open=True,
                           hi=1, visitor=True, advanced=True)
    # The seed article's two mistakes that still run, as switches (off: they cost accuracy and time,
    # benchmarks/seed_mistakes.py measures how much); the Train tab folds them under their own heading.
    softmax_before_loss: bool = setting(False, "the seed's mistake: softmax before CrossEntropyLoss (which applies "
                                        "log-softmax again)", label="softmax before the loss", visitor=True)
    hflip: bool = setting(False, "the seed's mistake: random horizontal flips of the training digits",
                          label="random horizontal flips", visitor=True)
    beta1: float = setting(0.9, "Adam/AdamW first-moment decay", lo=0, hi=1, hi_open=True)
    beta2: float = setting(0.999, "Adam/AdamW second-moment decay", lo=0, hi=1, hi_open=True)
    # When on, validation, test and the saved checkpoint use the averaged weights.
    ema: float = setting(0.0, "decay of an average of the weights that is evaluated and saved, 0 = off",
                         label="EMA decay", lo=0, hi=0.99999)
    # A continued run (the 99.5% tier's recipe): the same architecture and MNIST's normalisation.
    init: str | None = setting(None, "start from this checkpoint's weights (default: a random init)")
    # 0 = every core this process may use (usable_cores(): CPU affinity and a container's CPU
    # quota, not the host's count). The app keeps drawing quick another way: its training thread
    # runs at a lower priority (scheduler.py).
    threads: int = setting(0, "torch threads, 0 = every core this process may use", lo=0, hi=256)
    device: str = setting("auto", "auto = CUDA when available (as in the seed), else CPU", choices=DEVICE_CHOICES)
    val_size: int = setting(mdata.DEFAULT_VAL_SIZE, "validation images held out of training", lo=0)
    train_limit: int | None = setting(None, "use only this many training images (tests, quick demos; default: all 55,000)",
                                      lo=1)
    test_limit: int | None = setting(None, "evaluate on only this many test images (default: all 10,000)", lo=1)
    log_every: int = setting(50, "batches between running-loss reports at most (a run makes at least loss_points)",
                             lo=1)
    # Curves a visitor can watch whatever the run's length (0.5 to 30 epochs): the report interval
    # shrinks below log_every so that a run has at least this many training-loss points...
    loss_points: int = setting(60, "training-loss points per run, at least", lo=1)
    # ...and at least this many validation points, at evenly spaced steps (and one per epoch in
    # longer runs), each on the first val_subset validation images; the run's last point, its result
    # and its checkpoint use the whole validation split (and its logits fit the temperature). A default
    # LeNet run's 11 points on 500 images and its last on all 5,000 cost 2.6% of its time, 5.0% with the
    # test pass and the temperature (medians of 5; the old schedule, one whole split per epoch: 2.7% and
    # 4.9%; benchmarks/results/eval_cost.json); a point's accuracy on 500 images is within ~0.6 point of
    # the whole split's at 98%.
    val_points: int = setting(12, "validation points per run, at least (one per epoch in longer runs)", lo=1)
    val_subset: int = setting(500, "validation images at each point but the last (which uses them all)", lo=1)
    max_epochs: int = setting(1000, "upper bound on epochs (the app lowers it for public deployments)", lo=1,
                              cli=False)

    def __post_init__(self) -> None:
        recipe = FAST_RECIPES.get(str(self.model).strip().lower(), {})  # a bad model: validate says so
        self._from_recipe = {name for name in recipe if getattr(self, name) is None}
        for name in self._from_recipe:
            setattr(self, name, recipe[name])

    def validate(self, n_train: int | None = None) -> "TrainConfig":
        """Check every field, and a batch no larger than ``n_train`` images (the recipe's batch shrinks to
        fit; one that was asked for is refused); ValueError if one is wrong."""
        super().validate()
        if float(self.epochs).is_integer():  # 2.0 -> 2: whole epochs read as such everywhere
            self.epochs = int(self.epochs)
        if n_train is not None and self.batch_size > n_train and "batch_size" in self._from_recipe:
            self.batch_size = n_train  # the recipe's batch, on a small slice: the whole slice
        if n_train is not None:  # the batch setting's own bound check, at most the slice
            batch = next(s for s in self.settings() if s.name == "batch_size")
            replace(batch, hi=n_train).check(self.batch_size)
        return self


OPTIMIZERS = tuple(value for _, value in OPTIMIZER_CHOICES)
SCHEDULES = tuple(value for _, value in SCHEDULE_CHOICES)


# The seed article's recipe, as a preset (the Train tab's "seed's recipe" button, the benchmark).
SEED_RECIPE = dict(
    epochs=20, batch_size=64, optimizer="sgd", lr=0.01, momentum=0.9, schedule="step",
    step_size=5, gamma=0.5, weight_decay=0.0, dropout=0.0, augment=False, label_smoothing=0.0, ema=0.0,
    freeze=False,
)
