"""A fourth model, added through its registry entry alone, shows up everywhere a model does.

The registration runs in a fresh interpreter, before the command line and the app are built, as a
model registered in ``digitnet/models.py`` would: the command line trains it, the Train form and the
Draw tab offer it, the page gets its forward pass, Compare lists it and ``/predict`` and ``/train``
take it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from digitnet.checkpoint import SHIPPED_DIR
from digitnet.models import MODELS

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r'''
import json, sys, time
import torch.nn as nn
import torch.nn.functional as F
from digitnet.models import ModelEntry, register


class Tiny(nn.Module):
    """784-32-10 with BatchNorm: the smallest model the page's layer kinds describe."""

    def __init__(self, dropout=0.0):
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.bn1 = nn.BatchNorm1d(32)
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        return self.out(F.relu(self.bn1(self.fc1(x.flatten(1)))))


register(ModelEntry(
    "tiny", Tiny, "Tiny", feature_blocks=(("fc1", "bn1"),),
    recipe={"epochs": 1, "batch_size": 64, "lr": 0.02, "freeze": True},
    seconds_per_image=1.0 / 55_000, step_seconds=1e-3,
    page_layers=(("fc1", "linear", "bn1", 0, False, True), ("out", "linear", None, 0, False, False)),
    page_probes={"fc1": "bn1"},
))

from digitnet.train import build_parser, main  # noqa: E402

folder, drawing = sys.argv[1], sys.argv[2]
out = {"cli_help": build_parser().format_help()}
out["cli_rc"] = main(["--model", "tiny", "--train-limit", "1000", "--val-size", "200", "--test-limit", "300",
                      "--checkpoints", folder, "--quiet"])

from tests.conftest import SMALL_TRAIN, running_app, sketch_value, wait_until_finished  # noqa: E402

with running_app(train_overrides=SMALL_TRAIN) as app:
    config = app.demo.config
    out["choices"] = {str(c["props"].get("elem_id") or c["props"].get("label")): c["props"]["choices"]
                      for c in config["components"] if c["props"].get("choices")}
    panel = next(c["props"] for c in config["components"] if c["props"].get("elem_id") == "answer-panel")
    out["panel_models"] = panel.get("models") or (panel.get("props") or {}).get("models")
    client = app.client()
    out["predict"] = client.predict(sketch_value(drawing), "tiny", api_name="/predict")
    table = client.predict(api_name="/compare")
    out["compare"] = [dict(zip(table["headers"], row)) for row in table["data"]]
    out["train"] = client.predict(model="tiny", epochs=1, api_name="/train")["state"]
    out["status"] = wait_until_finished(client)[0]
    from digitnet.predict import CACHE
    from digitnet.webmodel import page_model
    out["page_layers"] = [layer["name"] for layer in page_model(CACHE.get("tiny")[1])["layers"]]
print("RESULT " + json.dumps(out, default=str))
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, drawn_digits) -> dict:
    folder = tmp_path_factory.mktemp("tiny-checkpoints")
    for name in MODELS:  # the shipped three beside the new one, as in a checkpoint folder of the app
        shutil.copy(SHIPPED_DIR / f"{name}.pt", folder / f"{name}.pt")
    env = dict(os.environ, DIGITNET_CHECKPOINTS=str(folder), PYTHONPATH=str(REPO))
    env.pop("DIGITNET_ALLOW_TRAINING", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), str(drawn_digits[0][1])], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    return {**json.loads(line[len("RESULT "):]), "folder": folder, "label": drawn_digits[0][0]}


def test_the_command_line_offers_and_trains_the_registered_model(tiny):
    assert "tiny" in tiny["cli_help"] and tiny["cli_rc"] == 0
    assert (tiny["folder"] / "tiny.pt").is_file()


def test_the_train_form_and_the_draw_tab_offer_it_and_the_page_gets_its_forward_pass(tiny):
    offered = [key for key, choices in tiny["choices"].items() if ["Tiny", "tiny"] in choices]
    # the Draw tab's model radio, the Train form's model (labelled "Model": a gr.I18n key), /predict's hidden model
    from digitnet.ui.words import form_label

    assert {"model-choice", str(form_label("model", "model")), "model"} <= set(offered)
    assert tiny["panel_models"][-1] == "tiny"  # the in-page answer cards
    assert tiny["page_layers"] == ["fc1", "out"]


def test_compare_predict_and_train_take_it(tiny):
    row = next(r for r in tiny["compare"] if r["Model"] == "Tiny")
    assert row["Parameters"] == f"{784 * 32 + 32 + 2 * 32 + 32 * 10 + 10:,}"
    confidences = {c["label"]: c["confidence"] for c in tiny["predict"]["confidences"]}
    assert len(confidences) == 10 and abs(sum(confidences.values()) - 1) < 1e-4
    assert tiny["train"] in ("queued", "running")
    assert tiny["status"]["state"] == "done" and tiny["status"]["model"] == "tiny", tiny["status"]
    assert tiny["status"]["test_acc"] > 0.5  # a 784-32-10 net on 2,000 digits learns something
