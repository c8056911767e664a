"""One source per hyperparameter: the config fields drive validation, the command line, the Train form and /train."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass

import pytest

from digitnet.finetune import FineTuneConfig
from digitnet.scheduler import TRAIN_PARAMS
from digitnet.train import add_config_arguments, build_parser
from digitnet.training import SEED_RECIPE, TrainConfig, setting, visitor_settings
from digitnet.ui import train as train_tab


@dataclass
class WithWarmup(TrainConfig):
    """What adding a hyperparameter looks like: one field."""

    warmup: float = setting(0.25, "share of the run spent warming up", lo=0, hi=1, visitor=True)


def test_a_new_field_reaches_validation_the_command_line_and_the_visitors_settings():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, WithWarmup)
    assert parser.parse_args([]).warmup == 0.25 and parser.parse_args(["--warmup", "0.5"]).warmup == 0.5
    assert "warmup" in [s.name for s in visitor_settings(WithWarmup)]
    assert WithWarmup(warmup=1).validate().warmup == 1.0
    with pytest.raises(ValueError, match=r"warmup must be at most 1, got 2"):
        WithWarmup(warmup=2).validate()


def test_the_command_line_has_every_setting_with_its_default():
    defaults = vars(build_parser().parse_args([]))
    for s in TrainConfig.settings():
        if s.cli:
            assert defaults[s.name] == s.default, s.name
    assert "max_epochs" not in defaults  # the deployment's limit, not a flag
    help_text = build_parser().format_help()
    assert "--label-smoothing" in help_text and "(default: 0.1)" in help_text


def test_the_form_the_presets_and_train_follow_the_visitor_settings():
    names = [s.name for s in visitor_settings(TrainConfig)]
    assert list(TRAIN_PARAMS) == names == [s.name for s in train_tab.FORM]
    assert {"model", "epochs", "lr", "label_smoothing", "momentum"} <= set(names)
    assert not {"threads", "device", "train_limit", "max_epochs"} & set(names)  # the deployment's choices
    # /train's keywords: the same names, TrainConfig's defaults and types.
    params = list(inspect.signature(train_tab.train_api).parameters.values())[2:]
    assert [(p.name, p.annotation) for p in params] == [(s.name, train_tab.annotation(s)) for s in train_tab.FORM]
    assert [p.default for p in params[2:]] == [s.default for s in train_tab.FORM[2:]]
    assert params[0].default is params[1].default is inspect.Parameter.empty  # /train(model, epochs, ...)
    # The presets fill every recipe setting; the seed's preset is the article's recipe.
    ctx = type("Ctx", (), {"max_epochs": 30})()
    fast = dict(zip((s.name for s in train_tab.PRESET), train_tab.fast_preset(ctx, "lenet")))
    seed = dict(zip((s.name for s in train_tab.PRESET), train_tab.seed_preset(ctx, "lenet")))
    assert fast == {s.name: getattr(TrainConfig(), s.name) for s in train_tab.PRESET}
    assert seed == {name: SEED_RECIPE.get(name, value) for name, value in fast.items()}
    assert (seed["optimizer"], seed["schedule"], seed["batch_size"], seed["epochs"]) == ("sgd", "step", 64, 20)


@pytest.mark.parametrize("config", [TrainConfig, FineTuneConfig])
def test_every_bounded_number_is_checked_against_its_bounds(config):
    """Just outside each bound is refused with a message naming the setting; the bound itself is accepted."""
    checked = 0
    referenced = {s.hi for s in config.settings() if isinstance(s.hi, str)}  # max_epochs bounds epochs
    for s in config.settings():
        if s.kind not in (int, float) or s.lo is None:
            continue
        below = s.lo if s.lo_open else s.lo - (1 if s.kind is int else 1e-9)
        with pytest.raises(ValueError, match=f"^{s.label} must be"):
            config(**{s.name: below}).validate()
        if not s.lo_open and s.name not in referenced:
            assert getattr(config(**{s.name: s.lo}).validate(), s.name) == s.lo
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("config", [TrainConfig, FineTuneConfig])
def test_choices_are_normalised_and_unknown_ones_refused(config):
    assert config(model=" LeNet ").validate().model == "lenet"
    with pytest.raises(ValueError, match=r"unknown model 'resnet': choose one of mlp, cnnnet, lenet"):
        config(model="resnet").validate()
    with pytest.raises(ValueError, match=r"unknown device 'tpu': choose one of auto, cpu, cuda"):
        config(device="tpu").validate()


def test_the_defaults_are_valid():
    assert TrainConfig().validate() == TrainConfig()
    assert FineTuneConfig().validate() == FineTuneConfig()


def test_the_fast_recipe_has_each_models_length_and_the_form_follows_the_model():
    assert (TrainConfig().epochs, TrainConfig().batch_size, TrainConfig().lr) == (1.5, 128, 0.015)  # LeNet
    assert (TrainConfig(model="cnnnet").epochs, TrainConfig(model="cnnnet").batch_size) == (1, 128)
    assert TrainConfig(model="mlp", lr=0.003).lr == 0.003  # a choice is kept
    assert TrainConfig(model="cnnnet", epochs=3, batch_size=64).validate().epochs == 3  # a choice is kept
    assert TrainConfig.from_dict({"model": "mlp", "epochs": None}).epochs == 2  # None: the recipe's
    ctx = type("Ctx", (), {"max_epochs": 30})()
    names = [s.name for s in train_tab.PRESET]
    lenet_fast = train_tab.fast_preset(ctx, "lenet")
    picked = dict(zip(names, train_tab.follow_model(ctx, "cnnnet", *lenet_fast)))
    assert (picked["epochs"], picked["batch_size"], picked["lr"]) == (1, 128, 0.01)  # the form showed the fast recipe
    seed = train_tab.seed_preset(ctx, "lenet")
    kept = train_tab.follow_model(ctx, "cnnnet", *seed)  # the visitor's own recipe stays as it is
    assert all(isinstance(v, dict) and v.get("__type__") == "update" for v in kept)
