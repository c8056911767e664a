"""A stranger on the public Space (issue 25): raw queue calls, crafted files, floods. Nothing they send may
read the server's files, hold its memory, hold the training slot for an hour, or starve other visitors.

Calls go the way a stranger's script would: ``httpx`` to ``/gradio_api/queue/join`` with a
``session_hash`` of their own, the answer read from ``/gradio_api/queue/data``. No timed asserts:
the latency of another visitor during a flood is measured by ``benchmarks/flood.py``.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio.utils import get_upload_folder
from gradio_client import handle_file
from PIL import Image

from conftest import SMALL_TRAIN, Gate, render_digit, running_app
from digitnet.checkpoint import CheckpointError, save_checkpoint
from digitnet.finetune import MAX_MY_DIGITS, MyDigitsError, load_my_digits, save_my_digits
from digitnet.models import build_model
from digitnet.preprocess import UPLOAD_REFUSED
from digitnet.scheduler import OVERRUN_FACTOR, RUN_OVERHEAD_SECONDS, News, Scheduler, TooCostly
from digitnet.ui import facts, words
from digitnet.settings import DEFAULT_MAX_RUN_SECONDS
from digitnet.training import FAST_RECIPES
from digitnet.ui import draw as draw_tab
from digitnet.ui import teach as teach_tab
from digitnet.ui import guard
from digitnet.ui import train as train_tab
from digitnet.ui import weight_files
from digitnet.visitors import BUDGET_CHECK_SECONDS, NO_HEARTBEAT_IDLE_SECONDS
from digitnet.workspace import Workspace, tensor_bytes

REPO = Path(__file__).resolve().parent.parent
TRUTH = 7  # MNIST test image 0
META = {"_type": "gradio.FileData"}


# ---------------------------------------------------------------------------- a stranger's raw calls


def fn_index(app, api_name: str) -> int:
    """The queue's index of the event with this api_name (a stranger reads it from /config)."""
    return next(i for i, fn in app.demo.fns.items() if fn.api_name == api_name)


def join(url: str, index: int, data: list, session: str) -> httpx.Response:
    """POST one event to Gradio's queue, as the page (or a script) does."""
    return httpx.post(f"{url}gradio_api/queue/join", json={"data": data, "fn_index": index, "session_hash": session},
                      timeout=30)


def answers(url: str, session: str, event_ids: list[str]) -> dict[str, tuple[bool, dict]]:
    """Read ``session``'s queue stream until every one of ``event_ids`` completed: {id: (success, output)}.
    One stream for all: a message read from a stream is gone from the session's queue."""
    found: dict[str, tuple[bool, dict]] = {}
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=120) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") in event_ids:
                    found[msg["event_id"]] = (msg["success"], msg["output"])
                    if len(found) == len(event_ids):
                        return found
    raise AssertionError(f"no answer for {set(event_ids) - set(found)}")


def answer(url: str, session: str, event_id: str) -> tuple[bool, dict]:
    """Read ``session``'s queue stream until ``event_id`` completes: (success, output)."""
    return answers(url, session, [event_id])[event_id]


def call(url: str, index: int, data: list, session: str) -> tuple[bool, dict]:
    r = join(url, index, data, session)
    r.raise_for_status()
    return answer(url, session, r.json()["event_id"])


def upload(url: str, path: Path) -> dict:
    """Upload a file as the page does; its FileData (with meta) for the next call."""
    with path.open("rb") as f:
        r = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, f)}, timeout=60)
    r.raise_for_status()
    return {"path": r.json()[0], "orig_name": path.name, "meta": META}


@pytest.fixture(scope="module")
def drawn(mnist, tmp_path_factory) -> Path:
    return render_digit(mnist.test_images[0].numpy(), tmp_path_factory.mktemp("drawn") / "seven.png")


# ---------------------------------------------------------------------------- 1. no path is a request's to give


SHAPES = {
    "bare path": lambda p: {"path": p},
    "path with meta": lambda p: {"path": p, "meta": META},
    "bare path as the composite": lambda p: {"background": None, "layers": [], "composite": {"path": p}},
    "path with meta as the composite": lambda p: {"background": None, "layers": [], "composite": {"path": p, "meta": META}},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_predict_never_opens_a_path_the_request_names_and_says_nothing_about_it(served_app, drawn, shape):
    url, index, session = served_app.url, fn_index(served_app, "predict"), f"stranger-{shape}"
    outside = [str(REPO / "docs" / "draw.png"),  # an image that exists: opened, it would read as a digit
               "docs/draw.png",  # the same, relative to the server's working directory
               "/proc/self/environ", "/etc/passwd",  # readable, not images
               "/nonexistent/secret.png",  # missing
               str(Path(get_upload_folder()) / ".." / ".." / "etc" / "passwd")]  # climbing out of Gradio's folder
    answers = [call(url, index, [SHAPES[shape](p), "lenet"], session) for p in outside]
    assert all(ok is False for ok, _ in answers)
    assert len({json.dumps(out, sort_keys=True) for _, out in answers}) == 1, answers  # existing or not: one answer
    if shape == "bare path":  # reaches digitnet: its one message
        assert answers[0][1]["error"] == UPLOAD_REFUSED
    text = json.dumps(answers[0][1])
    for word in ("exist", "passwd", "environ", "not an image", "draw.png", get_upload_folder()):
        assert word not in text
    # A made-up name in Gradio's own folder (which Gradio lets through with meta): digitnet's one message.
    ok, out = call(url, index, [SHAPES[shape](str(Path(get_upload_folder()) / ("0" * 64) / "x.png")), "lenet"], session)
    assert ok is False and out["error"] in (answers[0][1]["error"], UPLOAD_REFUSED)
    # A file really uploaded for the request is read, but only as Gradio's FileData (with meta): its path
    # alone is a path like any other.
    uploaded = upload(url, drawn)
    ok, out = call(url, index, [SHAPES[shape](uploaded["path"]), "lenet"], session)
    if "meta" in shape:
        assert ok and out["data"][0]["label"] == str(TRUTH)
    else:
        assert ok is False and out == answers[0][1]


def test_the_upload_handlers_refuse_a_path_that_gradio_did_not_upload(served_app, tmp_path, mnist):
    ctx = served_app.ctx
    ws = Workspace("visitor", ctx.scheduler, ctx.visitors.shipped)
    digits = save_my_digits([(mnist.test_images[0].numpy() / 255.0, 7)] * 5, tmp_path / "mine.npz")
    weights = save_checkpoint(tmp_path / "lenet.pt", build_model("lenet"), "lenet", 0.1307, 0.3081)
    for path in (digits, weights, "/etc/passwd", "/nonexistent.pt", "../../etc/passwd"):
        with pytest.raises(draw_tab.gr.Error) as refused:
            teach_tab.load_digits(ctx, ws, str(path))
        assert refused.value.message == UPLOAD_REFUSED
        with pytest.raises(train_tab.gr.Error) as refused:
            weight_files.upload_weights(ctx, ws, str(path))
        assert refused.value.message == UPLOAD_REFUSED
    assert ws.my_digits == [] and ws.runs() == []
    # A stranger's raw call with a bare path is stopped by Gradio before the handler (no meta).
    ok, out = call(served_app.url, fn_index(served_app, "load_digits"), [{"path": str(digits)}], "stranger-digits")
    assert ok is False and str(digits) not in json.dumps(out)


# ---------------------------------------------------------------------------- 2. checkpoint files


def deflated(path: Path) -> Path:
    """Rewrite a torch zip checkpoint with deflated entries (torch.load reads them; 64 MB of zeros -> ~64 kB)."""
    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in entries:
            out.writestr(info.filename, data)
    return path


def checkpoint(tmp_path: Path, name: str, **changes) -> Path:
    """A LeNet checkpoint file with ``changes`` to its dict."""
    ckpt = {"format_version": 1, "arch": "lenet", "state_dict": build_model("lenet").state_dict(), "mean": 0.1307,
            "std": 0.3081, "metrics": {"test_acc": 0.5}, "config": {}}
    ckpt.update(changes)
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def test_a_checkpoint_that_unpacks_to_far_more_is_refused_before_it_is_read(served_app, tmp_path):
    ws = Workspace("bomber", served_app.scheduler, served_app.ctx.visitors.shipped)
    extra = torch.zeros(16 * 2**20)  # 64 MB
    path = deflated(checkpoint(tmp_path, "bomb.pt", extra=extra))
    del extra
    assert path.stat().st_size < 2 * 2**20  # well under the 20 MB upload limit
    before = rss_mb()
    with pytest.raises(CheckpointError, match=r"^bomb\.pt unpacks to 64\.\d MB; a digitnet checkpoint unpacks to"):
        ws.load(path)
    assert rss_mb() - before < 32  # never inflated (the bomb is 64 MB)
    assert ws.runs() == [] and ws.memory_bytes() == 0


def test_only_the_models_own_tensors_are_kept(served_app, tmp_path):
    ws = Workspace("extra", served_app.scheduler, served_app.ctx.visitors.shipped)
    path = checkpoint(tmp_path, "lenet-extra.pt", extra=torch.ones(2**18), state_dict={
        **build_model("lenet").state_dict(), "spare.weight": torch.ones(2**18)})
    run = ws.load(path)
    assert set(run.weights["state_dict"]) == set(build_model("lenet").state_dict())
    assert "extra" not in run.weights
    # The model's own ~0.25 MB twice (weights and the model built from them), not the 2 MB of extras.
    assert ws.memory_bytes() < 1.1 * 2 * sum(t.numel() * t.element_size() for t in build_model("lenet").state_dict().values())


@pytest.mark.parametrize("changes, message", [
    (dict(arch=["lenet"]), r"is for unknown model \['lenet'\] \(one of mlp, cnnnet, lenet expected\)"),
    (dict(state_dict=[1, 2]), r"has a 'state_dict' that is a list, not a dict of tensors"),
    (dict(temperature=1e-9), r"invalid 'temperature' \(a number from 0\.05 to 20 expected\): 1e-09"),
    (dict(temperature=1e9), r"invalid 'temperature' \(a number from 0\.05 to 20 expected\)"),
    (dict(temperature=float("nan")), r"invalid 'temperature'"),
    (dict(std=1e-30), r"invalid 'std' \(a number from 0\.01 to 10 expected\)"),
    (dict(state_dict={k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                      for k, v in build_model("lenet").state_dict().items()}), r"weights that are not finite"),
    (dict(state_dict={k: torch.full_like(v, float("inf")) if v.is_floating_point() else v
                      for k, v in build_model("lenet").state_dict().items()}), r"weights that are not finite"),
    (dict(state_dict={"conv1.weight": torch.zeros(3, 3)}), r"does not fit the lenet model"),
])
def test_malformed_checkpoints_get_a_clear_message_without_a_server_path(served_app, tmp_path, changes, message):
    ws = Workspace("malformed", served_app.scheduler, served_app.ctx.visitors.shipped)
    path = checkpoint(tmp_path, "upload.pt", **changes)
    with pytest.raises(CheckpointError, match=message) as refused:
        ws.load(path)
    assert "upload.pt" in str(refused.value) and str(tmp_path) not in str(refused.value)
    assert ws.runs() == []


def test_an_npz_whose_header_claims_a_billion_digits_is_refused_unread(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 28, 28)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(3, np.int64))
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("images.npy", header.getvalue() + bytes(1000))
        z.writestr("labels.npy", labels.getvalue())
    with pytest.raises(MyDigitsError, match=r"claims 1,000,000,000 entries .* that the file does not hold") as e:
        load_my_digits(path)
    assert str(tmp_path) not in str(e.value)


def test_a_visitor_is_held_to_their_memory_budget(served_app, tmp_path):
    ws = Workspace("hoarder", served_app.scheduler, served_app.ctx.visitors.shipped)
    path = save_checkpoint(tmp_path / "mlp.pt", build_model("mlp"), "mlp", 0.1307, 0.3081)
    one = 2 * tensor_bytes(build_model("mlp").state_dict().values())  # its weights and the model built from them
    ws.budget = one  # room for one MLP in use, not two
    for _ in range(3):  # each upload replaces the one in use, which goes
        ws.load(path)
        assert ws.memory_bytes() <= ws.budget
    assert [r.number for r in ws.runs()] == [3] and ws.in_use("mlp").run == 3
    ws.my_digits = [(np.zeros((28, 28), np.float32), 1)] * 10  # now nothing can make room
    with pytest.raises(CheckpointError, match=r"one visitor may hold at most"):
        ws.load(path)
    assert [r.number for r in ws.runs()] == [3] and ws.in_use("mlp").run == 3  # what they had is kept


def test_downloads_are_written_once_per_run(served_app, tmp_path):
    ws = Workspace("downloader", served_app.scheduler, served_app.ctx.visitors.shipped)
    run = ws.load(save_checkpoint(tmp_path / "lenet.pt", build_model("lenet"), "lenet", 0.1307, 0.3081))
    first = ws.export_file("lenet", tmp_path)
    stamp = first.stat().st_mtime_ns
    assert ws.export_file("lenet", tmp_path) == first and first.stat().st_mtime_ns == stamp  # not written again
    assert first.name == f"lenet-run{run.number}.pt"
    assert torch.load(first, weights_only=True)["state_dict"].keys() == run.weights["state_dict"].keys()
    ws.close()
    assert not first.exists()


# ---------------------------------------------------------------------------- memory across visitors


def test_raw_sessions_without_a_heartbeat_expire_and_the_server_budget_evicts_the_oldest(mnist, checkpoints_dir,
                                                                                       tmp_path):
    digits = save_my_digits([(mnist.test_images[i].numpy() / 255.0, int(mnist.test_labels[i]))
                             for i in range(MAX_MY_DIGITS)], tmp_path / "many.npz")  # 3.1 MB in memory
    with running_app(train_overrides=SMALL_TRAIN, visitors_budget_mb=8) as app:
        visitors, index = app.ctx.visitors, fn_index(app, "load_digits")
        browser = app.client()  # holds a heartbeat, like an open tab
        browser.predict(handle_file(str(digits)), api_name="/load_digits")
        before = visitors.memory_bytes()
        for n in range(5):  # five strangers, each holding 1,000 digits: 15 MB against a budget of 8
            ok, _ = call(app.url, index, [upload(app.url, digits)], f"stranger-{n}")
            assert ok
        time.sleep(BUDGET_CHECK_SECONDS)  # the budget is added up at most once a second, on a request
        ok, _ = call(app.url, fn_index(app, "clear_digits"), [], "stranger-last")
        assert visitors.memory_bytes() <= 8 * 2**20 < before + 5 * MAX_MY_DIGITS * 28 * 28 * 4
        assert visitors.evicted >= 1 and visitors.peek("stranger-0") is None  # the least recently used went
        assert visitors.has_heartbeat(browser.session_hash) and not visitors.has_heartbeat("stranger-4")
        # Minutes later the strangers without a heartbeat are freed; the tab keeps its digits for hours.
        later = time.monotonic() + NO_HEARTBEAT_IDLE_SECONDS + 1
        visitors.sweep(now=later)
        assert [n for n in range(5) if visitors.peek(f"stranger-{n}")] == []
        assert len(visitors.peek(browser.session_hash).my_digits) == MAX_MY_DIGITS


# ---------------------------------------------------------------------------- 3. a run's cost is bounded


def test_run_estimates_follow_steps_and_batch_and_the_limit_refuses_an_hour_long_run():
    scheduler = Scheduler(max_run_seconds=DEFAULT_MAX_RUN_SECONDS)
    for model in FAST_RECIPES:  # 30 epochs of every model's fast recipe fit the default limit
        assert scheduler.estimate_training(model=model, epochs=30) <= DEFAULT_MAX_RUN_SECONDS
    quick = scheduler.estimate_training(model="lenet", epochs=1, batch_size=512)
    small = scheduler.estimate_training(model="lenet", epochs=1, batch_size=2)
    assert small > 10 * quick  # the same images in 256x the steps (each step's fixed cost ~2.5 ms)
    with pytest.raises(TooCostly) as refused:
        scheduler.estimate_training(model="lenet", epochs=30, batch_size=1)
    assert refused.value.limit == 300 and refused.value.seconds > 300 and refused.value.batch == 1
    assert re.search(r"about \d+ min .*runs may take at most 5 min on this server \(DIGITNET_MAX_RUN_SECONDS=300\)\. "
                     r"Use fewer epochs or a larger batch", facts.refusal(refused.value))  # what the page says
    assert scheduler.waiting() == [] and scheduler.running is None


def test_an_over_long_run_is_refused_through_the_api_and_nothing_is_queued(mnist, checkpoints_dir):
    with running_app(train_overrides=SMALL_TRAIN, max_run_seconds=20) as app:
        client = app.client()
        with pytest.raises(Exception, match=r"runs may take at most 20 s on this server \(DIGITNET_MAX_RUN_SECONDS=20\)"):
            client.predict(model="lenet", epochs=30, batch_size=1, api_name="/train")
        assert client.predict(api_name="/status")["state"] == "idle"
        assert app.scheduler.waiting() == [] and app.scheduler.running is None


def test_a_run_that_overruns_the_limit_in_practice_is_stopped(mnist, checkpoints_dir):
    scheduler = Scheduler(overrides=SMALL_TRAIN, max_run_seconds=5, threads=1)
    scheduler.eta.speed = dict.fromkeys(scheduler.eta.speed, 1e-4)  # a machine that looks 10,000x faster than it is
    try:
        run = scheduler.submit_training("stranger", 1, model="lenet", epochs=30, batch_size=8)
        assert run.deadline == OVERRUN_FACTOR * 5  # a run of ~20 s here
        assert run.wait_ended(120)
        s = run.snapshot()
        assert s.state == "stopped" and s.news is News.OVERRAN and s.limit_seconds == 5
        assert "a run may take at most 5 s here (DIGITNET_MAX_RUN_SECONDS)" in facts.run_message(s)
        assert run.weights is None and s.epoch < 30
    finally:
        scheduler.close()


def test_start_estimates_follow_each_waiting_runs_own_estimate(mnist, checkpoints_dir, monkeypatch):
    gate = Gate(monkeypatch)
    scheduler = Scheduler(overrides=SMALL_TRAIN, threads=1)
    try:
        first = scheduler.submit_training("a", 1, model="lenet", epochs=1)
        assert gate.entered.wait(60)
        slow = scheduler.submit_training("b", 1, model="lenet", epochs=2, batch_size=2)
        fast = scheduler.submit_training("c", 1, model="lenet", epochs=2, batch_size=500)
        behind = scheduler.submit_training("d", 1, model="mlp", epochs=1)
        running_rest = scheduler.remaining_seconds(first)
        assert scheduler.seconds_until_start(slow) == pytest.approx(running_rest, rel=0.5)
        training = lambda run: scheduler.expected_seconds(run) - RUN_OVERHEAD_SECONDS  # noqa: E731
        assert training(slow) > 10 * training(fast)  # 2,000 steps of 2 images against 8 of 500
        wait = scheduler.seconds_until_start(behind) - scheduler.seconds_until_start(fast)
        assert wait == pytest.approx(scheduler.expected_seconds(fast), abs=0.05)
    finally:
        gate.open()
        scheduler.close()


# ---------------------------------------------------------------------------- 4. a fair share of the queue


def test_one_session_cannot_fill_the_queue_and_another_visitor_is_still_answered(served_app, drawn, monkeypatch):
    release, started = threading.Event(), threading.Semaphore(0)
    real = draw_tab.predict

    def held(*args, **kwargs):  # /predict waits here until released: the flood stays pending
        started.release()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(draw_tab, "predict", held)
    url, index = served_app.url, fn_index(served_app, "predict")
    value = {"background": None, "layers": [], "composite": upload(url, drawn)}
    try:
        joined = [join(url, index, [value, "lenet"], "flooder") for _ in range(guard.MAX_PENDING_PER_SESSION + 6)]
        codes = [r.status_code for r in joined]
        assert codes[:guard.MAX_PENDING_PER_SESSION] == [200] * guard.MAX_PENDING_PER_SESSION
        assert set(codes[guard.MAX_PENDING_PER_SESSION:]) == {429}, codes
        assert "at most 4 at once" in joined[-1].json()["detail"]
        other = join(url, index, [value, "lenet"], "visitor")  # another visitor still gets in
        assert other.status_code == 200
    finally:
        release.set()
    ok, out = answer(url, "visitor", other.json()["event_id"])
    assert ok and out["data"][0]["label"] == str(TRUTH)
    flooded = answers(url, "flooder", [r.json()["event_id"] for r in joined[:guard.MAX_PENDING_PER_SESSION]])
    assert all(ok for ok, _ in flooded.values())  # the flooder's own four are answered too
    assert join(url, index, [value, "lenet"], "flooder").status_code == 200  # its share is back


# ---------------------------------------------------------------------------- the Draw tab's photo


def test_the_photo_is_read_from_its_upload_only_and_turned_upright(served_app, mnist, tmp_path):
    from digitnet.preprocess import to_mnist_array

    ctx = served_app.ctx
    ws = Workspace("photographer", ctx.scheduler, ctx.visitors.shipped)
    with pytest.raises(draw_tab.gr.Error) as refused:  # the photo's handler puts it on the pad (issue 19)
        draw_tab.photo_to_pad(ctx, ws, "/etc/passwd")
    assert refused.value.message == UPLOAD_REFUSED
    # A phone photo stored sideways with its EXIF rotation (6: turn 90 degrees clockwise) reads upright.
    digit = Image.fromarray(255 - mnist.test_images[0].numpy()).resize((280, 280), Image.BICUBIC)
    upright = Image.new("L", (400, 400), 255)
    upright.paste(digit, (60, 60))
    exif = Image.Exif()
    exif[274] = 6
    folder = Path(get_upload_folder()) / f"test-{tmp_path.name}"
    folder.mkdir(parents=True, exist_ok=True)
    upright.rotate(90, expand=True).save(folder / "phone.jpg", quality=95, exif=exif)
    upright.save(folder / "scan.jpg", quality=95)
    assert np.abs(to_mnist_array(folder / "phone.jpg") - to_mnist_array(folder / "scan.jpg")).max() < 0.1
    payload, _ = draw_tab.photo_to_pad(ctx, ws, str(folder / "phone.jpg"))
    label, *_ = draw_tab.recognise_pad(ctx, ws, payload, "lenet")
    assert max(label, key=label.get) == str(TRUTH)
