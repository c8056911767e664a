"""The seed article's mistakes as switches (issue 22, part 4): ``softmax_before_loss`` and ``hflip``.

What each does to training (the loss computed, the batch flipped), that /train takes them as keywords
and refuses bad values, and that a run with one overlays against a run without it, told apart by name.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from gradio_client.exceptions import AppError

from digitnet import data as mdata
from digitnet.loop import supervised_step, training_loss
from digitnet.training import TrainConfig, Trainer
from digitnet.ui import runs as runs_ui
from digitnet.ui import train as train_tab
from digitnet.ui.mistakes import MISTAKES, WHAT_GOES_WRONG, run_name

WAIT = 120  # seconds for a run on the small slice


def test_softmax_before_loss_is_cross_entropy_of_the_probabilities():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    y = torch.tensor([0, 2])
    p = torch.softmax(logits, 1)
    by_hand = -(torch.log_softmax(p, 1)[torch.arange(2), y]).mean()  # CrossEntropyLoss on probabilities
    assert training_loss(logits, y, softmax_before_loss=True).item() == pytest.approx(by_hand.item(), abs=1e-6)
    assert training_loss(logits, y, softmax_before_loss=True).item() == pytest.approx(0.6522, abs=1e-3)  # worked by hand: (0.6578 + 0.6466) / 2
    assert training_loss(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item(), abs=1e-7)
    assert training_loss(logits, y).item() == pytest.approx(0.1609, abs=1e-3)  # (0.1698 + 0.1520) / 2
    # What goes wrong: even a perfectly sure right answer keeps a loss of log(1 + 9/e) over 10 digits.
    sure = torch.full((1, 10), -50.0)
    sure[0, 3] = 50.0
    floor = training_loss(sure, torch.tensor([3]), softmax_before_loss=True).item()
    assert floor == pytest.approx(math.log(1 + 9 / math.e), abs=1e-4) and floor > 1.46
    assert training_loss(sure, torch.tensor([3])).item() < 1e-6


def test_the_step_trains_on_the_loss_it_reports():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 10)
    x, y = torch.randn(8, 4), torch.randint(0, 10, (8,))
    with torch.no_grad():
        expected = F.cross_entropy(torch.softmax(model(x), 1), y, label_smoothing=0.1).item()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, _ = supervised_step(model, opt, x, y, 0.1, softmax_before_loss=True)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_hflip_mirrors_about_half_of_the_batch_pixel_for_pixel():
    x = torch.rand(64, 1, 28, 28)
    out = mdata.random_hflip(x, torch.Generator().manual_seed(1))
    mirrored = [bool(torch.equal(out[i], x[i].flip(-1))) for i in range(64)]
    same = [bool(torch.equal(out[i], x[i])) for i in range(64)]
    assert all(m or s for m, s in zip(mirrored, same)) and 16 < sum(mirrored) < 48
    i = mirrored.index(True)
    for r, c in ((0, 0), (5, 3), (27, 10), (14, 27)):
        assert out[i, 0, r, c] == x[i, 0, r, 27 - c]  # the pixel at column c came from column 27 - c
    assert torch.equal(mdata.random_hflip(x, p=1.0), x.flip(-1)) and torch.equal(mdata.random_hflip(x, p=0.0), x)


def test_a_trainer_with_the_switches_flips_its_batches_and_trains_on_the_mistaken_loss(mnist):
    small = dict(model="mlp", epochs=1, batch_size=50, train_limit=200, val_size=100, test_limit=100, seed=3)
    plain, flipped = (Trainer(TrainConfig(**small, hflip=h), save=False) for h in (False, True))
    for t in (plain, flipped):
        t.prepare()
    a, b = next(iter(plain.batches())), next(iter(flipped.batches()))
    assert torch.equal(a[1], b[1])  # the same digits in the same order
    mirrored = [bool(torch.equal(b[0][i], a[0][i].flip(-1))) and not torch.equal(a[0][i], b[0][i])
                for i in range(len(a[1]))]
    assert all(m or torch.equal(a[0][i], b[0][i]) for i, m in enumerate(mirrored)) and any(mirrored)
    wrong = Trainer(TrainConfig(**small, softmax_before_loss=True), save=False)
    wrong.prepare()
    x, y = next(iter(wrong.batches()))
    loss, logits, _ = wrong.step((x, y))
    assert loss.item() == pytest.approx(training_loss(logits, y, 0.1, softmax_before_loss=True).item(), abs=1e-5)
    assert loss.item() > 1.46  # never below the floor


def test_train_takes_the_switches_as_keywords_and_refuses_bad_values(served_app):
    sched = served_app.scheduler
    cfg = sched.training_config(model="lenet", epochs=1, softmax_before_loss=True, hflip=True)
    assert cfg.softmax_before_loss is True and cfg.hflip is True
    off = sched.training_config(model="lenet", epochs=1)
    assert off.softmax_before_loss is False and off.hflip is False  # off by default
    with pytest.raises(ValueError, match=r"random horizontal flips must be true or false, got 'yes'"):
        sched.training_config(model="lenet", epochs=1, hflip="yes")
    client = served_app.client()
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/train"]["parameters"]
    params = {p["parameter_name"]: p for p in api}
    assert all(params[name]["parameter_has_default"] and params[name]["parameter_default"] is False
               for name in MISTAKES)
    with pytest.raises(AppError, match=r"softmax before the loss must be true or false, got 2"):
        client.predict(model="mlp", epochs=1, softmax_before_loss=2, api_name="/train")


def test_a_run_with_a_mistake_overlays_against_one_without(served_app, idle_queue):
    ctx = served_app.ctx
    ws = ctx.visitors.get("mistakes")
    for params in (dict(), dict(softmax_before_loss=True)):
        run = ws.train(model="mlp", epochs=1, **params)
        assert run.wait_ended(WAIT) and run.snapshot().state == "done"
    choices = runs_ui.overlay_choices(ws)
    assert choices == [("run 1: MLP", "1"), ("run 2: MLP with softmax before the loss", "2")]
    value = runs_ui.overlay_value(ws, ["1", "2"])
    assert [s["name"] for s in value["series"]] == [name for name, _ in choices]
    plain, wrong = value["series"]
    assert plain["loss"] and wrong["loss"] and plain["val"] and wrong["val"]
    # The curve tells them apart: the mistaken loss stays above log(1 + 9/e) = 1.46, the plain one falls below.
    assert min(p[-1] for p in wrong["loss"]) > 1.46 > min(p[-1] for p in plain["loss"])
    table = runs_ui.runs_frame(ws)
    assert "softmax before the loss" in table["settings"][0] and "softmax" not in table["settings"][1]
    assert run_name(run.snapshot()).endswith("with softmax before the loss")


def test_the_fold_says_what_goes_wrong(served_app):
    import gradio as gr

    from digitnet.ui.words import EN, ZH, form_label, t

    blocks = list(served_app.demo.blocks.values())  # texts are gr.I18n keys (ui/words.py): compared as such
    fold = next(b for b in blocks if isinstance(b, gr.Accordion) and str(b.label) == str(t("mistakes_title")))
    inside, todo = [], list(fold.children)  # its checkboxes and sentences, in order
    while todo:
        c = todo.pop(0)
        inside.append(c)
        todo[:0] = getattr(c, "children", [])
    texts = [str(c.value) for c in inside if isinstance(c, gr.Markdown)]
    boxes = [str(c.label) for c in inside if isinstance(c, gr.Checkbox)]
    assert boxes == [str(form_label(name, name)) for name in MISTAKES]
    assert [EN[f"setting_{name}"] for name in MISTAKES] == ["softmax before the loss", "random horizontal flips"]
    assert all(str(t(f"mistake_{name}")) in texts for name in MISTAKES)
    assert EN[f"mistake_{MISTAKES[0]}"] == WHAT_GOES_WRONG[MISTAKES[0]] and "1.46" in ZH[f"mistake_{MISTAKES[0]}"]
    assert all(c.value is False for c in inside if isinstance(c, gr.Checkbox))  # off by default
    # A preset (fast recipe, seed's recipe) leaves the switches as the visitor set them.
    assert not {s.name for s in train_tab.PRESET} & set(MISTAKES)
