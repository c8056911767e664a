"""Trainer on a small MNIST slice: metrics through the callback, stop, checkpoint, reproducibility, errors."""

import copy
import math
import threading

import numpy as np
import pytest
import torch

from digitnet import data as mdata
from digitnet.checkpoint import load_model
from digitnet import ema, loop, system, training
from digitnet.training import BatchProgress, EpochMetrics, TrainConfig, Trainer, TrainResult, usable_cores

SMALL = dict(train_limit=3000, val_size=500, test_limit=1000, batch_size=100, log_every=5)


def small_config(**kw):
    return TrainConfig(**{**dict(model="mlp", epochs=2, **SMALL), **kw})


def test_trainer_reports_metrics_and_writes_a_checkpoint_that_predicts_the_same(tmp_path):
    events = []
    trainer = Trainer(small_config(), events.append, checkpoint_dir=tmp_path)
    result = trainer.run()
    batches = [e for e in events if isinstance(e, BatchProgress)]
    epochs = [e for e in events if isinstance(e, EpochMetrics)]
    assert isinstance(events[-1], TrainResult) and result.state == "done"
    # 12 validation points (TrainConfig.val_points) at evenly spaced steps; two of them close an epoch
    assert len(epochs) == 12 and [m.epoch for m in result.history if m.epoch_end] == [1, 2]
    assert len(batches) >= 2 * 6  # several running-loss reports per epoch (30 batches, every 5)
    # no ETA at the first report (its pace is measured after it), then one that runs down to 0
    assert batches[0].eta_seconds is None and batches[1].eta_seconds > 0
    assert batches[-1].eta_seconds == pytest.approx(0, abs=0.5)
    assert epochs[-1].train_loss < epochs[0].train_loss  # the curve goes down
    assert 0.85 < result.test_acc <= 1 and 0.85 < epochs[-1].val_acc <= 1
    assert sum(map(sum, result.confusion)) == 1000
    assert sum(result.confusion[i][i] for i in range(10)) == round(result.test_acc * 1000)
    assert result.misclassified and all(m["true"] != m["pred"] for m in result.misclassified)
    model, ckpt = load_model(tmp_path / "mlp.pt")
    assert ckpt["metrics"]["test_acc"] == pytest.approx(result.test_acc)
    assert ckpt["config"]["epochs"] == 2 and len(ckpt["metrics"]["history"]) == 12
    d = mdata.load_mnist()
    x = mdata.normalize(d.test_images[:50])
    trainer.model.eval()
    with torch.inference_mode():
        assert torch.equal(model(x).argmax(1), trainer.model(x).argmax(1))
        assert torch.allclose(model(x), trainer.model(x), atol=1e-5)


def test_stop_ends_the_run_at_the_next_batch_and_saves_nothing(tmp_path):
    first_batch = threading.Event()

    def callback(event):
        if isinstance(event, BatchProgress):
            first_batch.set()

    trainer = Trainer(small_config(epochs=50, log_every=1), callback, checkpoint_dir=tmp_path)
    thread = threading.Thread(target=trainer.run, daemon=True)  # as the scheduler's worker runs it
    thread.start()
    assert first_batch.wait(60)
    trainer.stop()
    thread.join(10)
    assert not thread.is_alive(), "the run did not stop"
    assert trainer.result.state == "stopped" and trainer.result.test_acc is None
    assert len(trainer.result.history) < 50
    assert not (tmp_path / "mlp.pt").exists()


def test_a_part_of_an_epoch_ends_the_run_halfway_through_the_next_pass_on_the_schedules_last_step():
    events = []
    cfg = small_config(model="lenet", epochs=1.5, log_every=1)
    result = Trainer(cfg, events.append, save=False).run()
    batches = [e for e in events if isinstance(e, BatchProgress)]
    assert [m.epoch for m in result.history if m.epoch_end] == [1, 1.5]
    # 3,000 training images at batch 100: 30 steps, then 15 (a report after every one)
    assert [(b.epoch, b.batch, b.batches) for b in batches] == (
        [(1, i, 30) for i in range(1, 31)] + [(2, i, 15) for i in range(1, 16)])
    assert batches[-1].done == pytest.approx(1.5, abs=0.02) and batches[-1].eta_seconds == pytest.approx(0, abs=0.5)
    assert [b.done for b in batches] == sorted(b.done for b in batches)  # the curve's x only grows
    # the one-cycle schedule was as long as the run: a shorter one raises, a longer one (two epochs:
    # 60 steps) would still be at ~a fifth of its peak after 45; this one is back near its floor
    assert result.history[-1].lr < cfg.lr / 100
    assert result.state == "done" and result.test_acc > 0.8
    assert TrainConfig(epochs=2.0).validate().epochs == 2 and isinstance(TrainConfig(epochs=2.0).validate().epochs, int)


@pytest.mark.parametrize("freeze", [True, False])
def test_freezeout_stops_the_feature_blocks_at_a_third_and_two_thirds_of_the_run(freeze):
    seen = []  # after each step: (conv1's weights, conv2's, fc1's), copied
    trainer = Trainer(small_config(model="lenet", epochs=1.5, freeze=freeze, freeze_from=1 / 3, log_every=1),
                      lambda e: isinstance(e, BatchProgress) and seen.append(
                          [getattr(trainer.model, n).weight.detach().clone() for n in ("conv1", "conv2", "fc1")]),
                      save=False)
    result = trainer.run()
    assert len(seen) == 45  # 30 + 15 steps
    moved = [[not torch.equal(a, b) for a, b in zip(before, after)] for before, after in zip(seen, seen[1:])]
    if freeze:  # conv1 stops after 15 of 45 steps, conv2 after 30; the classifier trains to the end
        assert all(m[0] for m in moved[:14]) and not any(m[0] for m in moved[14:])
        assert all(m[1] for m in moved[:29]) and not any(m[1] for m in moved[29:])
    else:
        assert all(m[0] and m[1] for m in moved)
    assert all(m[2] for m in moved)
    assert all(p.requires_grad for p in trainer.model.parameters())  # the delivered model is a plain one
    assert result.test_acc > 0.8
    assert TrainConfig(model="lenet").freeze is True and TrainConfig(model="cnnnet").freeze is False
    assert TrainConfig(model="lenet").freeze_from == 0.5 and TrainConfig(model="cnnnet").freeze_from is None


def test_freezeout_can_start_later():  # LeNet's fast recipe: halfway and three quarters
    seen = []  # after each step: (conv1's weights, conv2's), copied
    trainer = Trainer(small_config(model="lenet", epochs=1.5, freeze=True, log_every=1),
                      lambda e: isinstance(e, BatchProgress) and seen.append(
                          [getattr(trainer.model, n).weight.detach().clone() for n in ("conv1", "conv2")]),
                      save=False)
    trainer.run()
    moved = [[not torch.equal(a, b) for a, b in zip(before, after)] for before, after in zip(seen, seen[1:])]
    # of 45 steps: conv1 stops after half (22 or 23: round(22.5)), conv2 after three quarters (34)
    stop1, stop2 = round(45 * 0.5), round(45 * 0.75)
    assert all(m[0] for m in moved[:stop1 - 1]) and not any(m[0] for m in moved[stop1 - 1:])
    assert all(m[1] for m in moved[:stop2 - 1]) and not any(m[1] for m in moved[stop2 - 1:])


def test_seeded_runs_are_reproducible():
    a = Trainer(small_config(epochs=1, seed=7), save=False).run()
    b = Trainer(small_config(epochs=1, seed=7), save=False).run()
    c = Trainer(small_config(epochs=1, seed=8), save=False).run()
    assert a.history[0].train_loss == pytest.approx(b.history[0].train_loss, rel=1e-5)
    assert a.test_acc == pytest.approx(b.test_acc, abs=1e-3)
    assert a.history[0].train_loss != pytest.approx(c.history[0].train_loss, rel=1e-5)


@pytest.mark.parametrize("name", ["lenet", "cnnnet"])
def test_cnns_learn_on_a_small_slice(name):
    result = Trainer(small_config(model=name, epochs=2), save=False).run()
    assert result.test_acc > 0.75  # chance is 0.10; 3,000 images and two epochs are plenty to learn


@pytest.mark.parametrize("field,value,message", [
    ("epochs", 0, "epochs must be at least 0.5"),
    ("epochs", 0.2, "epochs must be at least 0.5"),
    ("epochs", "two", "epochs must be a finite number"),
    ("lr", 0, "learning rate must be greater than 0"),
    ("lr", -1, "learning rate must be greater than 0"),
    ("lr", math.nan, "learning rate must be a finite number"),
    ("lr", math.inf, "learning rate must be a finite number"),
    ("batch_size", 0, "batch size must be at least 1"),
    ("model", "resnet", "unknown model"),
    ("optimizer", "rmsprop", "unknown optimizer"),
    ("schedule", "cosine", "unknown schedule"),
    ("dropout", 1.0, "dropout must be at most"),
    ("beta1", 1.0, "beta1 must be below 1"),
    ("beta2", -0.1, "beta2 must be at least 0"),
    ("label_smoothing", 0.6, "label smoothing must be at most 0.5"),
    ("ema", 1.0, "EMA decay must be at most"),
])
def test_invalid_configs_are_refused_with_a_clear_message(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value}).validate()


def test_batch_larger_than_the_data_is_refused_unless_it_is_the_recipes():
    with pytest.raises(ValueError, match="batch size must be at most 3000"):
        Trainer(small_config(batch_size=5000), save=False).run()
    # the MLP's recipe batch (384) on 300 images: the whole slice a step, not an error
    cfg = TrainConfig(model="mlp", epochs=1, train_limit=300, val_size=100, test_limit=100)
    assert cfg.batch_size == 384 and cfg.validate(n_train=300).batch_size == 300


def test_missing_data_reaches_the_caller(monkeypatch):
    """The run raises; its caller (the scheduler, the command line) reports it (test_scheduler.py, test_cli.py)."""
    def no_data(*a, **k):
        raise mdata.DataNotFoundError("MNIST not found in /nowhere")

    monkeypatch.setattr(mdata, "load_mnist", no_data)
    seen = []
    with pytest.raises(mdata.DataNotFoundError, match="MNIST not found"):
        Trainer(small_config(), seen.append, save=False).run()
    assert seen == []  # no result was reported


def test_seed_recipe_preset_is_the_articles():
    from digitnet.training import SEED_RECIPE

    cfg = TrainConfig(**SEED_RECIPE).validate()
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.batch_size, cfg.epochs) == ("sgd", 0.01, 0.9, 64, 20)
    assert (cfg.schedule, cfg.step_size, cfg.gamma) == ("step", 5, 0.5)


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "200000 100000\n"}, 2),  # cgroup v2: a 2-CPU quota on an 8-core host (a Space)
    ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: both cores get work
    ({"cpu.max": "max 100000\n"}, 8),  # no quota: the affinity decides
    ({"quota": "100000\n", "period": "100000\n"}, 1),  # cgroup v1
    ({"quota": "-1\n", "period": "100000\n"}, 8),
    ({}, 8),  # no cgroup files at all (not Linux, or not a container)
])
def test_usable_cores_follows_the_containers_quota_not_the_hosts_core_count(tmp_path, monkeypatch, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(system, "CGROUP_CPU_QUOTA_FILES", (
        (str(tmp_path / "cpu.max"), None), (str(tmp_path / "quota"), str(tmp_path / "period"))))
    monkeypatch.setattr(system.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert usable_cores() == expected


def test_training_uses_every_usable_core_by_default(monkeypatch):
    monkeypatch.setattr(loop, "usable_cores", lambda: 3)  # a count torch would not pick by itself here
    seen = []
    cfg = TrainConfig(model="mlp", epochs=1, batch_size=64, train_limit=256, val_size=64, test_limit=64)
    assert cfg.threads == 0
    before = torch.get_num_threads()
    try:
        Trainer(cfg, callback=lambda e: seen.append(torch.get_num_threads()), save=False).run()
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {3}


def test_adam_betas_reach_the_optimizer():
    model = torch.nn.Linear(3, 2)
    for name in ("adam", "adamw"):
        opt = training.make_optimizer(model, TrainConfig(optimizer=name, beta1=0.7, beta2=0.9).validate())
        assert opt.param_groups[0]["betas"] == (0.7, 0.9)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_epoch_loss_is_the_label_smoothed_cross_entropy(smoothing):
    """With a learning rate too small to move the weights, the epoch's mean loss is the reference
    smoothed cross-entropy of the same batches in the same order (train-mode BatchNorm)."""
    cfg = small_config(model="lenet", label_smoothing=smoothing, optimizer="sgd", lr=1e-12, momentum=0.0,
                       weight_decay=0.0, train_limit=600).validate()
    split = mdata.train_val_split(mdata.load_mnist(), cfg.val_size, limit=cfg.train_limit)[0]
    torch.manual_seed(0)
    model = training.build_model("lenet")
    with torch.no_grad():
        model.fc3.weight.mul_(30)  # confident logits, where smoothing changes the loss a lot
    reference = copy.deepcopy(model).train()

    def reference_loss(s: float) -> float:
        with torch.no_grad():
            return sum(
                torch.nn.functional.cross_entropy(reference(x), y, label_smoothing=s, reduction="sum").item()
                for x, y in mdata.iterate_batches(split, cfg.batch_size, generator=torch.Generator().manual_seed(3))
            ) / len(split)

    expected = reference_loss(smoothing)
    assert smoothing == 0 or abs(expected - reference_loss(0.0)) > 1e-3 * expected  # 10x the tolerance below
    optimizer = training.make_optimizer(model, cfg)
    batches = mdata.iterate_batches(split, cfg.batch_size, generator=torch.Generator().manual_seed(3))

    def step(batch):
        x, y = batch
        return (*training.supervised_step(model, optimizer, x, y, cfg.label_smoothing), y)

    loss, _, stopped = training.train_one_epoch(batches, step, steps=6)
    assert loss == pytest.approx(expected, rel=1e-4) and not stopped


def test_weight_ema_follows_its_formula_and_skips_integer_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        for t in model.parameters():
            t.fill_(0.0)
    average = ema.weight_average(model, decay=0.9)
    history = [0.0]
    for step, value in enumerate([1.0, 2.0, 4.0, 4.0], start=0):
        with torch.no_grad():
            for t in model.parameters():
                t.fill_(value)
        d = min(0.9, (1 + step) / (10 + step))  # the warm-up: 0.1, 0.18, 0.25, 0.31
        assert ema.warmed_up_decay(0.9, step) == pytest.approx(d)
        history.append(d * history[-1] + (1 - d) * value)
        average.update_parameters(model)
    target = copy.deepcopy(model)
    target[1].num_batches_tracked.fill_(7)
    ema.copy_average(average, target)
    assert torch.allclose(target[0].weight, torch.full((2, 2), history[-1]))
    assert torch.allclose(target[1].running_var, torch.ones(2))  # averaged, and it never changed
    assert target[1].num_batches_tracked.item() == 7  # an integer counter is not averaged
    assert average.module[1].num_batches_tracked.item() == 0


def test_a_run_with_ema_trains_the_same_and_delivers_the_average():
    """EMA does not change training (same losses); it changes what is validated, tested and saved."""
    plain = Trainer(small_config(model="mlp", epochs=1, seed=3), save=False)
    averaged = Trainer(small_config(model="mlp", epochs=1, seed=3, ema=0.95), save=False)
    a, b = plain.run(), averaged.run()
    assert a.history[0].train_loss == pytest.approx(b.history[0].train_loss, rel=1e-5)
    assert averaged.eval_model is not averaged.model and plain.eval_model is plain.model
    delivered, live = averaged.model.state_dict(), plain.model.state_dict()
    assert any(not torch.allclose(delivered[k].float(), live[k].float()) for k in live)
    for k, v in averaged.eval_model.state_dict().items():  # validation saw the delivered weights
        assert torch.equal(v, delivered[k]) or not v.is_floating_point()  # BatchNorm's step counters are not averaged
    assert b.test_acc > 0.8


def test_init_continues_from_a_checkpoints_weights_and_refuses_another_architecture(tmp_path):
    Trainer(small_config(model="mlp", epochs=2), checkpoint_dir=tmp_path).run()
    frozen = dict(optimizer="sgd", lr=1e-12, momentum=0.0, weight_decay=0.0, epochs=1)  # the weights cannot move
    cold = Trainer(small_config(model="mlp", **frozen), save=False).run()
    warm = Trainer(small_config(model="mlp", init=str(tmp_path / "mlp.pt"), **frozen), save=False).run()
    assert cold.history[0].train_acc < 0.5 < 0.85 < warm.history[0].train_acc
    wrong = Trainer(small_config(model="lenet", init=str(tmp_path / "mlp.pt")), save=False)
    with pytest.raises(ValueError, match="holds a mlp"):
        wrong.run()


def test_a_short_run_gets_dense_curves_and_its_result_uses_the_whole_validation_split():
    """Half an epoch (60 steps) still makes >= 40 training-loss points and 12 validation points; every
    point but the last sees the fixed validation subset, the last (the result, the checkpoint) all of it."""
    events = []
    cfg = small_config(epochs=0.5, batch_size=25, log_every=50, val_size=1500, val_subset=300)
    trainer = Trainer(cfg, events.append, save=False)
    result = trainer.run()
    losses = [e for e in events if isinstance(e, BatchProgress)]
    assert len(losses) >= 40 and [b.done for b in losses] == sorted(b.done for b in losses)
    points = result.history
    assert [m.epoch for m in points] == pytest.approx([0.5 * k / 12 for k in range(1, 13)], abs=1e-3)
    assert [m.val_images for m in points] == [300] * 11 + [1500]
    assert [m.epoch_end for m in points] == [False] * 11 + [True]
    full_loss, full_acc, _ = training.evaluate(trainer.model, trainer.val, torch.device("cpu"))
    assert points[-1].val_acc == pytest.approx(full_acc) and points[-1].val_loss == pytest.approx(full_loss, rel=1e-4)
    assert trainer.checkpoint(result)["metrics"]["val_acc"] == pytest.approx(full_acc)
    # The temperature was fitted on the last point's logits: what a separate pass over the split gives.
    from digitnet.calibrate import fit_split_temperature
    assert result.temperature == pytest.approx(fit_split_temperature(trainer.model, trainer.val), rel=1e-4)


def test_the_eta_leaves_out_a_slow_start(monkeypatch):
    """On a clock the test moves: the first step takes 2 s (a run starting while the server answers a burst of
    requests first), every later one 0.01 s. The ETA counts the steps after the first report at 0.01 s each;
    extrapolated from the start it would read ~60 times too long at the second report."""
    clock = [0.0]
    monkeypatch.setattr(loop, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: clock[0])}))
    events = []
    trainer = Trainer(small_config(epochs=1, log_every=3, loss_points=10), events.append, save=False)
    step = trainer.step

    def timed_step(batch):
        clock[0] += 2.0 if trainer.steps_done == 0 else 0.01
        return step(batch)

    trainer.step = timed_step
    trainer.run()
    batches = [e for e in events if isinstance(e, BatchProgress)]
    assert [b.batch for b in batches] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]  # 30 steps, a report every 3
    assert batches[0].eta_seconds is None
    for b in batches[1:]:
        assert b.eta_seconds == pytest.approx(0.01 * (30 - b.batch), abs=1e-9)


def test_a_long_run_validates_at_every_epoch_end():
    """13 epochs of 2 steps: more epochs than val_points, so one point per epoch, each at its end."""
    result = Trainer(small_config(epochs=13, train_limit=200, batch_size=100), save=False).run()
    assert [m.epoch for m in result.history] == list(range(1, 14))
    assert all(m.epoch_end for m in result.history)


def test_the_visitors_own_drawing_is_followed_at_every_validation_point():
    """TrainingRun.own: the model's probability for the drawing's digit at each point, as the model computes it."""
    test = mdata.load_mnist()
    index = int((test.test_labels == 7).nonzero()[0])  # the first 7 of the test set
    image = test.test_images[index].numpy().astype(np.float32) / 255
    trainer = Trainer(small_config(model="lenet", epochs=1), save=False)
    trainer.own = (image, 7)
    result = trainer.run()
    own = [m.own for m in result.history]
    assert len(own) == len(result.history) >= 2 and all(0 <= p <= 1 for p in own)
    assert own[-1] > own[0] and own[-1] > 0.5  # a random start is unsure; one epoch on 3,000 images reads the 7
    trainer.model.eval()
    with torch.inference_mode():
        p7 = torch.softmax(trainer.model(mdata.normalize(test.test_images[index:index + 1])), dim=1)[0, 7]
    assert abs(float(p7) - own[-1]) < 1e-5
    plain = Trainer(small_config(model="mlp", epochs=1), save=False).run()
    assert all(m.own is None for m in plain.history)  # no drawing, nothing followed


def test_every_validation_points_numbers_are_the_models_own_at_that_point():
    """A point on the subset runs its images and the watched digits in one pass (``Trainer.validate``): what
    it reports must be what the model, as it is at that step, answers for each of them alone."""
    test = mdata.load_mnist()
    index = int((test.test_labels == 3).nonzero()[0])
    image = test.test_images[index].numpy().astype(np.float32) / 255
    trainer = Trainer(small_config(model="lenet", epochs=1, val_points=5, val_subset=300), save=False)
    trainer.own = (image, 3)
    x_probe = mdata.normalize(test.test_images[list(training.PROBE_INDICES)])
    seen = []

    def check(event):
        if not isinstance(event, training.EpochMetrics):
            return
        model = trainer.model  # the callback comes before the next step: these are the point's weights
        model.eval()
        split = trainer.val if event.val_images == len(trainer.val) else \
            mdata.Split(trainer.val.images[:300], trainer.val.labels[:300])
        with torch.inference_mode():
            loss, acc, _ = training.evaluate(model, split, torch.device("cpu"))
            probe = model(x_probe).argmax(1).tolist()
            own = float(torch.softmax(model(mdata.normalize(test.test_images[index:index + 1])), 1)[0, 3])
        model.train()
        seen.append((event.val_images, event.val_acc == pytest.approx(acc, abs=1e-9),
                     event.val_loss == pytest.approx(loss, rel=1e-4), event.probe == probe,
                     event.own == pytest.approx(own, abs=1e-5)))

    trainer.callback = check
    trainer.run()
    assert [s[0] for s in seen] == [300] * 4 + [len(trainer.val)]
    assert all(all(s[1:]) for s in seen), seen


def test_the_probe_digits_answers_change_as_the_model_learns_and_are_the_models_own():
    trainer = Trainer(small_config(model="lenet", epochs=1), save=False)
    result = trainer.run()
    answers = [m.probe for m in result.history]
    assert all(len(a) == len(training.PROBE_INDICES) and all(0 <= d <= 9 for d in a) for a in answers)
    assert answers[0] != answers[-1]  # a random start reads them otherwise than a trained LeNet
    test = mdata.load_mnist()
    labels = test.test_labels[list(training.PROBE_INDICES)]
    x = mdata.normalize(test.test_images[list(training.PROBE_INDICES)])
    trainer.model.eval()
    with torch.inference_mode():
        assert trainer.model(x).argmax(1).tolist() == answers[-1]
    right = [sum(int(a == b) for a, b in zip(ans, labels.tolist())) for ans in answers]
    assert right[-1] > right[0] and right[-1] >= 8  # 3,000 images, one epoch: most of the 16
