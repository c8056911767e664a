"""Checkpoints: format, round trip, atomic writes, clear errors, no code execution."""

import os

import pytest
import torch
import torch.nn as nn

from digitnet import checkpoint as ck
from digitnet.models import MODELS, build_model


def save_model(path, name="lenet", **metrics):
    """Save a freshly initialised ``name`` model (eval mode) with known metadata; return the model."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    with torch.no_grad():  # BatchNorm statistics away from their defaults: a round trip must keep buffers too
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    ck.save_checkpoint(path, model, name, 0.1307, 0.3081, metrics={"test_acc": 0.99, **metrics}, config={"epochs": 3})
    return model


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_keeps_format_and_predictions(tmp_path, name):
    path = tmp_path / f"{name}.pt"
    model = save_model(path, name)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # the documented way to read it
    assert raw["format_version"] == 1 and raw["arch"] == name
    assert raw["mean"] == pytest.approx(0.1307) and raw["std"] == pytest.approx(0.3081)
    assert raw["metrics"]["test_acc"] == 0.99 and raw["config"] == {"epochs": 3}
    assert raw["state_dict"].keys() == model.state_dict().keys()
    loaded, meta = ck.load_model(path)
    assert type(loaded) is MODELS[name] and not loaded.training
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected, got = model(x), loaded(x)
        assert not torch.equal(expected, build_model(name).eval()(x))  # other weights answer otherwise
    assert torch.equal(got, expected)  # the same weights and statistics: the same numbers, to the bit
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # readable like any other file
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.pt"]  # no temp files left


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ck.CheckpointError, match="nothere.pt.*does not exist"):
        ck.load_checkpoint(tmp_path / "nothere.pt")


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "lenet.pt"
    save_model(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError, match="lenet.pt could not be read"):
        ck.load_checkpoint(path)


@pytest.mark.parametrize("content", [[1, 2, 3], {"weights": 1}, {"format_version": 1, "arch": "resnet", "state_dict": {}}])
def test_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "x.pt"
    torch.save(content, path)
    with pytest.raises(ck.CheckpointError, match="x.pt"):
        ck.load_checkpoint(path)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(ck.CheckpointError, match="junk.pt"):
        ck.load_checkpoint(path)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if unpickled unsafely


def test_a_pickle_carrying_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "arch": "lenet", "state_dict": {}, "payload": Evil(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(ck.CheckpointError, match="evil.pt"):
        ck.load_checkpoint(path)
    assert not marker.exists()
    # the unsafe way really would have run it, so the check above can fail
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_mismatching_weights_are_a_clear_error(tmp_path):
    path = tmp_path / "lenet.pt"
    ck.save_checkpoint(path, build_model("mlp"), "lenet", 0.1307, 0.3081)  # MLP weights labelled LeNet
    with pytest.raises(ck.CheckpointError, match="does not fit the lenet model"):
        ck.load_model(path)


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "lenet.pt"
    save_model(path)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["lenet.pt"]
    monkeypatch.undo()
    ck.load_model(path)  # still loads


def test_invalid_normalisation_is_refused(tmp_path):
    path = tmp_path / "lenet.pt"
    ck.save_checkpoint(path, build_model("lenet"), "lenet", 0.1307, 0.0)
    with pytest.raises(ck.CheckpointError, match="invalid 'std'"):
        ck.load_checkpoint(path)


# ----------------------------------------------------------------------------- the temperature


def test_round_trip_keeps_the_temperature(tmp_path):
    path = tmp_path / "lenet.pt"
    ck.save_checkpoint(path, build_model("lenet"), "lenet", 0.1307, 0.3081, temperature=1.375)
    assert torch.load(path, weights_only=True)["temperature"] == 1.375
    assert ck.load_checkpoint(path)["temperature"] == 1.375


def test_a_checkpoint_without_a_temperature_loads_with_one(tmp_path):
    path = tmp_path / "lenet.pt"
    save_model(path)
    raw = torch.load(path, weights_only=True)
    del raw["temperature"]  # a file written before calibration existed
    torch.save(raw, path)
    assert ck.load_checkpoint(path)["temperature"] == 1.0


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), "1.5", True, None])
def test_a_bad_temperature_is_refused_naming_the_file(tmp_path, bad):
    path = tmp_path / "lenet.pt"
    save_model(path)
    raw = torch.load(path, weights_only=True)
    raw["temperature"] = bad
    torch.save(raw, path)
    with pytest.raises(ck.CheckpointError, match="lenet.pt.*temperature"):
        ck.load_checkpoint(path)


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan")])
def test_save_refuses_a_bad_temperature(tmp_path, bad):
    with pytest.raises(ValueError, match="temperature"):
        ck.save_checkpoint(tmp_path / "lenet.pt", build_model("lenet"), "lenet", 0.1307, 0.3081, temperature=bad)
    assert not list(tmp_path.iterdir())


def test_the_default_folder_is_the_repos_whatever_the_working_directory(tmp_path, monkeypatch):
    from digitnet.checkpoint import SHIPPED_DIR, checkpoint_dir

    monkeypatch.delenv("DIGITNET_CHECKPOINTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert checkpoint_dir() == SHIPPED_DIR and (SHIPPED_DIR / "lenet.pt").is_file()
    monkeypatch.setenv("DIGITNET_CHECKPOINTS", str(tmp_path / "mine"))
    assert checkpoint_dir() == tmp_path / "mine"
