"""What the library refuses reaches the page in the visitor's language: every reason raised in digitnet/ has a
Chinese template that its raise sites can fill in, and the handlers a visitor reaches answer in Chinese (with
the same numbers) where the page is Chinese, and with the library's own English sentence otherwise."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio.utils import get_upload_folder
from PIL import Image

import digitnet
from digitnet.errors import Refusal
from digitnet.finetune import MAX_MY_DIGITS, MY_DIGITS_FORMAT
from digitnet.preprocess import pad_payload
from digitnet.scheduler import Scheduler
from digitnet.ui import draw as draw_tab
from digitnet.ui import facts, words, words_errors
from digitnet.ui import fool as fool_tab
from digitnet.ui import teach, weight_files
from digitnet.ui import train as train_tab
from digitnet.ui.pad import pad_value
from digitnet.ui.common import Context
from digitnet.visitors import Visitors

PACKAGE = Path(digitnet.__file__).parent
HAN = re.compile(r"[\u4e00-\u9fff]")


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def sample_values(*templates: str) -> dict:
    """A value for every field the templates name: a number where a format spec needs one."""
    values = {}
    for template in templates:
        for _, name, spec, _ in string.Formatter().parse(template):
            if name:
                values[name] = 1234.5 if spec or values.get(name) == 1234.5 else "x"
    return values


# ---------------------------------------------------------------------------- every raise site, from the source


@dataclass
class Site:
    where: str  # file:line
    reason: str
    template: str
    fields: set[str]


def dict_assignments(tree: ast.AST) -> dict[str, set[str]]:
    """``facts = dict(a=..., b=...)``: the keys of each name so assigned (for ``**facts`` in a raise)."""
    found = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "dict"):
            found[node.targets[0].id] = {k.arg for k in node.value.keywords if k.arg}
    return found


def raise_sites() -> list[Site]:
    """Every ``X.because(reason, template, **fields)`` in digitnet/, with the fields it supplies."""
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        module = "digitnet." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        dicts = dict_assignments(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "because"):
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            reason, template = node.args[:2]
            assert isinstance(reason, ast.Constant) and isinstance(reason.value, str), f"{where}: a literal reason"
            if isinstance(template, ast.Constant):
                template = template.value
            else:  # a module's constant (images.UPLOAD_REFUSED)
                template = getattr(importlib.import_module(module), template.id)
            fields = set()
            for k in node.keywords:
                if k.arg is None:
                    assert isinstance(k.value, ast.Name) and k.value.id in dicts, f"{where}: **{ast.unparse(k.value)}"
                    fields |= dicts[k.value.id]
                else:
                    fields.add(k.arg)
            sites.append(Site(where, reason.value, template, fields))
    return sites


SITES = raise_sites()


def refusal_classes() -> list[type]:
    for info in pkgutil.walk_packages(digitnet.__path__, "digitnet."):
        if not info.name.endswith("__main__"):  # that one runs the command line
            importlib.import_module(info.name)
    found, todo = [], [Refusal]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_the_scan_finds_the_raise_sites():
    reasons = {s.reason for s in SITES}
    assert len(SITES) >= 60 and len(reasons) >= 55
    assert {"setting.too_large", "checkpoint.unreadable", "digits.labels", "fool.reads_it_already",
            "image.not_image", "pad.size"} <= reasons


@pytest.mark.parametrize("site", SITES, ids=lambda s: f"{s.reason}@{s.where}")
def test_every_reason_has_chinese_words_its_raise_site_can_fill_in(site):
    zh = words_errors.ZH.get(site.reason)
    assert zh, f"{site.where}: no Chinese template for {site.reason!r} in ui/words_errors.py"
    assert placeholders(zh) <= site.fields, f"{site.where} supplies {site.fields}, the Chinese names {placeholders(zh)}"
    # The English sentence uses every field it is given (the Chinese may leave out an English-only one, but
    # ``setting`` is how ui/ names a setting in the visitor's language).
    assert placeholders(site.template) <= site.fields <= placeholders(site.template) | {"setting"}, site.where
    values = sample_values(site.template, zh)
    assert "{" not in site.template.format(**values) and "{" not in zh.format(**values)
    if re.search(r"[A-Za-z]", re.sub(r"\{[^}]*\}", "", site.template)):  # words, not only fields and signs
        assert HAN.search(zh) and not HAN.search(site.template), site.where


def test_no_chinese_template_is_left_without_a_raise_site():
    assert set(words_errors.ZH) == {s.reason for s in SITES}


def test_refusals_keep_their_bases_and_are_raised_with_a_reason():
    """Callers catch them as before (ValueError, RuntimeError); none is raised with a bare sentence, which the
    page could only show in English."""
    from digitnet.checkpoint import CheckpointError
    from digitnet.config import SettingError
    from digitnet.finetune import MyDigitsError
    from digitnet.fool import FoolError
    from digitnet.images import ImageError

    assert issubclass(CheckpointError, RuntimeError) and not issubclass(CheckpointError, ValueError)
    assert all(issubclass(c, ValueError) for c in (ImageError, MyDigitsError, FoolError, SettingError))
    # The ones that word themselves from their own attributes (UploadTooLarge, ...) have their own __init__.
    plain = {c.__name__ for c in refusal_classes() if c is not Refusal and "__init__" not in vars(c)}
    assert {"CheckpointError", "ImageError", "MyDigitsError", "FoolError", "SettingError"} <= plain
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in plain:
                pytest.fail(f"{path.name}:{node.lineno} raises {node.func.id}(...) without a reason: use .because")


def test_a_refusal_is_worded_in_each_language():
    from digitnet.config import SettingError
    from digitnet.finetune import MyDigitsError

    exc = SettingError.because("setting.too_large", "{label} must be at most {hi}, got {value!r}",
                               setting="batch_size", label="batch size", hi=512, value=4096)
    inner = MyDigitsError.because("digits.image_values", "a digit image must hold values between 0 and 1 (white ink "
                                  "on black)")
    outer = MyDigitsError.because("digits.in_file", "{name}: {error}", name="mine.npz", error=inner)
    assert (str(exc), facts.refusal(exc)) == ("batch size must be at most 512, got 4096",) * 2
    assert facts.refusal(outer) == "mine.npz: a digit image must hold values between 0 and 1 (white ink on black)"
    words.use("zh-CN")
    try:
        assert facts.refusal(exc) == "批量大小最多为 512，收到的是 4096"  # the form's name for the setting
        assert facts.refusal(outer) == "mine.npz：数字图像的值必须在 0 到 1 之间（黑底白字）"
        assert facts.refusal(ValueError("plain")) == "plain"  # not a refusal: its own text
    finally:
        words.use("en")


# ---------------------------------------------------------------------------- the handlers a visitor reaches


@pytest.fixture(scope="module")
def ctx():
    scheduler = Scheduler()  # nothing here trains: every request is refused before it is queued
    yield Context(scheduler=scheduler, visitors=Visitors(scheduler))
    scheduler.close()


@pytest.fixture
def ws(ctx, request):
    return ctx.visitors.get(request.node.name)


@pytest.fixture
def uploads() -> Path:
    """A folder inside Gradio's upload folder: what the handlers accept as a visitor's upload."""
    return Path(tempfile.mkdtemp(dir=get_upload_folder()))


def refused(call) -> dict[str, str]:
    """The gr.Error message of ``call()`` in English and in Chinese."""
    out = {}
    for lang in ("en", "zh-CN"):
        words.use(lang)
        try:
            with pytest.raises(gr.Error) as error:
                call()
            out[lang] = error.value.message
        finally:
            words.use("en")
    return out


def seven_read(mnist) -> tuple[str, int]:
    """An MNIST test digit as the pad sends it, and the digit LeNet reads in it."""
    from digitnet.predict import predict

    image = mnist.test_images[0].numpy()
    drawing = pad_payload(image)
    return drawing, predict(pad_value(drawing), "lenet").digit


def test_a_photo_that_is_no_image_or_too_big_is_refused_in_chinese(ctx, ws, uploads):
    (uploads / "notes.png").write_text("shopping list: eggs, milk")
    said = refused(lambda: draw_tab.photo_to_pad(ctx, ws, str(uploads / "notes.png")))
    assert said["en"] == "notes.png is not an image file that can be read: use a PNG, JPEG or WebP"
    assert said["zh-CN"] == "notes.png 不是可以读取的图像文件：请用 PNG、JPEG 或 WebP"
    Image.new("L", (3000, 2000), 255).save(uploads / "poster.png")
    said = refused(lambda: draw_tab.photo_to_pad(ctx, ws, str(uploads / "poster.png")))
    assert said["en"] == "poster.png is 3000x2000 pixels: at most 4 megapixels, please shrink it"
    assert said["zh-CN"] == "poster.png 有 3000x2000 像素：最多 4 百万像素，请先缩小"


def test_a_corrupt_or_foreign_weights_file_is_refused_in_chinese(ctx, ws, uploads):
    (uploads / "weights.pt").write_bytes(b"not a checkpoint at all")
    said = refused(lambda: weight_files.upload_weights(ctx, ws, str(uploads / "weights.pt")))
    assert said["en"].startswith("checkpoint weights.pt could not be read (truncated, corrupt, or not a safe digitnet "
                                 "checkpoint): ")
    assert said["zh-CN"].startswith("无法读取检查点 weights.pt（文件被截断、已损坏，或不是安全的 digitnet 检查点）：")
    torch.save({"format_version": 7, "arch": "lenet", "state_dict": {}}, uploads / "future.pt")
    said = refused(lambda: weight_files.upload_weights(ctx, ws, str(uploads / "future.pt")))
    assert said == {"en": "checkpoint future.pt has format_version 7, expected 1",
                    "zh-CN": "检查点 future.pt 的 format_version 是 7，应为 1"}
    assert ws.runs() == []


def test_a_bad_my_digits_file_is_refused_in_chinese(ctx, ws, uploads):
    images = np.zeros((2, 28, 28), np.float32)
    np.savez(uploads / "labels.npz", images=images, labels=np.array([3, 12]), format=np.array(MY_DIGITS_FORMAT))
    said = refused(lambda: teach.load_digits(ctx, ws, str(uploads / "labels.npz")))
    assert said == {"en": "labels.npz: labels must be whole numbers from 0 to 9, found [12]",
                    "zh-CN": "labels.npz：标签必须是 0 到 9 的整数，发现了 [12]"}
    np.savez(uploads / "ink.npz", images=images + 2, labels=np.array([3, 4]), format=np.array(MY_DIGITS_FORMAT))
    said = refused(lambda: teach.load_digits(ctx, ws, str(uploads / "ink.npz")))
    assert said == {"en": "ink.npz: a digit image must hold values between 0 and 1 (white ink on black)",
                    "zh-CN": "ink.npz：数字图像的值必须在 0 到 1 之间（黑底白字）"}
    assert ws.my_digits == []


def test_a_full_set_of_my_digits_is_refused_in_chinese(ctx, ws, mnist):
    drawing, _ = seven_read(mnist)
    ws.my_digits = [(np.zeros((28, 28), np.float32), 1)] * MAX_MY_DIGITS
    said = refused(lambda: teach.add_to_my_digits(ctx, ws, drawing, None, "7"))
    assert said == {"en": "you already have 1000 digits, the most this app keeps (1000)",
                    "zh-CN": "你已经有 1000 个数字，这是本应用最多保留的数量（1000）"}


def test_fool_it_refuses_a_blank_pad_and_the_digit_it_reads_already_in_chinese(ctx, ws, mnist):
    said = refused(lambda: fool_tab.fool_view(ctx, ws, "", None, "lenet", "3"))
    assert said == {"en": "Draw a digit first: there is nothing to change on a blank canvas.",
                    "zh-CN": "先写一个数字：空白画布上没有什么可改的。"}
    drawing, digit = seven_read(mnist)
    said = refused(lambda: fool_tab.fool_view(ctx, ws, drawing, None, "lenet", str(digit)))
    assert said == {"en": f"The model already reads a {digit}: pick another target digit.",
                    "zh-CN": f"模型已经认成 {digit} 了：请选另一个目标数字。"}
    said = refused(lambda: fool_tab.fool_api(ctx, ws, drawing, "lenet", 12))  # /fool's target, from a script
    assert said["en"] == "The target must be a digit from 0 to 9, or empty for the easiest; got 12."
    assert said["zh-CN"] == "目标必须是 0 到 9 的数字，或者留空让它找最容易的；收到的是 12。"


@pytest.mark.parametrize("params, en, zh", [
    ({"epochs": 999}, "epochs must be at most 30, got 999", "轮数最多为 30，收到的是 999"),
    ({"batch_size": 0}, "batch size must be at least 1, got 0", "批量大小至少为 1，收到的是 0"),
    ({"lr": 0}, "learning rate must be greater than 0, got 0", "学习率必须大于 0，收到的是 0"),
    ({"batch_size": 2.5}, "batch size must be a whole number, got 2.5", "批量大小必须是整数，收到的是 2.5"),
    ({"optimizer": "adam2"}, "unknown optimizer 'adam2': choose one of", "优化器没有 'adam2' 这个选项：请从 "),
], ids=["epochs", "batch", "lr", "whole", "choice"])
def test_a_setting_out_of_range_is_refused_in_chinese(ctx, ws, params, en, zh):
    said = refused(lambda: train_tab.train_api(ctx, ws, **params))  # /train, and the page's Train button below
    assert said["en"].startswith(en) and said["zh-CN"].startswith(zh)
    words.use("zh-CN")
    try:
        assert train_tab.train_click(ctx, ws, **params) == f"⚠️ {said['zh-CN']} 没有新的训练加入队列。"
    finally:
        words.use("en")
    assert train_tab.train_click(ctx, ws, **params) == f"⚠️ {said['en']} Nothing new was queued."
    assert ws.runs() == []


def test_what_the_browser_kept_is_refused_in_chinese(ctx, ws):
    """A refresh hands back what the page kept; what cannot be loaded is said in the page's language."""
    import base64
    import json

    from digitnet.ui import answer

    junk = base64.b64encode(b"no checkpoint, no digits").decode()
    kept = json.dumps({"weights": {"resnet": {"ckpt": junk}, "lenet": {"ckpt": "%%%"}, "mlp": {"ckpt": junk}},
                       "digits": junk})
    english = answer.restore(ws, kept)
    assert english[0] == "'resnet': not a digitnet model" and english[1].startswith("LeNet: not base64 (")
    assert english[2].startswith("MLP: checkpoint mlp-") and "could not be read" in english[2]
    assert english[3] == "my digits: my-digits.npz is not a my-digits file (expected the .npz this app lets you download)"
    assert answer.restore(ws, "{not json") == ["what your browser kept is not JSON: ignored"]
    words.use("zh-CN")
    try:
        chinese = answer.restore(ws, kept)
        assert chinese[0] == "'resnet'：不是 digitnet 的模型" and chinese[1].startswith("LeNet: 不是 base64（")
        assert chinese[2].startswith("MLP: 无法读取检查点 mlp-")
        assert chinese[3] == "我的数字: my-digits.npz 不是“我的数字”文件（应为本应用让你下载的 .npz 文件）"
        assert answer.restore(ws, "{not json") == ["浏览器保存的内容不是 JSON：已忽略"]
    finally:
        words.use("en")
    assert ws.runs() == [] and ws.my_digits == []


def test_a_stale_choice_of_weights_is_refused_in_chinese(ctx, ws):
    said = refused(lambda: draw_tab.choose_weights(ctx, ws, "lenet", "3"))  # a run this visitor does not have
    assert said == {"en": "you have no run 3", "zh-CN": "你没有第 3 次训练"}
    assert ws.in_use("lenet").run is None  # still the shipped weights
