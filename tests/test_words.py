"""The page's words: every English text has its Chinese, with the same placeholders; facts are worded in ui/."""

from __future__ import annotations

import re
import string

import pytest

from digitnet.run import News, RunState
from digitnet.scheduler import MIN_FINETUNE_DIGITS, QueueFull, TooCostly, TooFewDigits, TrainingDisabled
from digitnet.ui import facts, words
from digitnet.upload import UploadTooLarge, WrongModel
from digitnet.workspace import AlreadyTraining, OverBudget

HAN = re.compile(r"[\u4e00-\u9fff]")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_english_text_has_a_chinese_one_and_back():
    assert set(words.EN) == set(words.ZH)
    assert all(words.ZH[k].strip() for k in words.ZH)


@pytest.mark.parametrize("rows, why", [
    ([("greeting", "Hello")], "needs a key, an English and a Chinese text"),  # the Chinese forgotten
    ([("greeting", "Hello", "  ")], "needs a key, an English and a Chinese text"),  # an empty Chinese
    ([("greeting", "Hello" "你好")], "needs a key, an English and a Chinese text"),  # a comma forgotten: one text
    ([("greeting", "Hello", "你好"), ("greeting", "Hi", "嗨")], "'greeting' is written twice"),
])
def test_a_key_is_written_once_with_both_its_texts(rows, why):
    """The dictionaries are built from (key, English, Chinese) rows: a row that lacks its Chinese, or a key written
    twice, stops the app at start rather than leave a blank or a stale text on the page."""
    with pytest.raises(ValueError, match=re.escape(why)):
        words.dictionaries(rows)
    en, zh = words.dictionaries([("greeting", "Hello", "你好")], [("bye", "Bye", "再见")])
    assert (en, zh) == ({"greeting": "Hello", "bye": "Bye"}, {"greeting": "你好", "bye": "再见"})


@pytest.mark.parametrize("key", sorted(words.EN))
def test_both_languages_fill_in_the_same_numbers(key):
    assert placeholders(words.EN[key]) == placeholders(words.ZH[key]), key


@pytest.mark.parametrize("key", sorted(words.ZH))
def test_the_chinese_is_chinese(key):
    """Every Chinese entry says something in Chinese (but the switch, which names the other language)."""
    if key == "switch":
        assert (words.EN[key], words.ZH[key]) == ("中文", "English")
    elif not re.search(r"[A-Za-z]", re.sub(r"\{\w+\}", "", words.EN[key])):  # no words, only numbers and signs
        assert words.ZH[key] == words.EN[key], key
    else:
        assert HAN.search(words.ZH[key]) and not HAN.search(words.EN[key]), key


def test_gradio_gets_only_fixed_texts_and_the_page_the_javascript_ones():
    fixed, page = words.fixed_words(), words.page_words()
    assert set(fixed) == set(page) == set(words.LANGUAGES)
    assert all("{" not in v for v in fixed["zh-CN"].values())
    assert page["zh-CN"]["answer"] == "是 {digit}（{pct}）" and page["en"]["blank"] == "Draw a digit"
    assert page["zh-CN"]["tab_train"] == "训练"  # words.js renames tabs Gradio leaves behind after a switch
    assert "</script" not in words.head_script().lower().replace("<script>", "", 1).rsplit("</script>", 1)[0]


def test_the_fine_tune_help_states_the_real_minimum():
    assert MIN_FINETUNE_DIGITS == 5 and "at least five" in words.EN["teach_help"] and "五个" in words.ZH["teach_help"]


@pytest.mark.parametrize("cookie, accept, expected", [
    (None, None, "en"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
    (None, "zh-TW", "zh-CN"),
    (None, "fr-FR,fr;q=0.9,en-GB;q=0.5", "en"),
    (None, "de-DE", "en"),
    ("en", "zh-CN", "en"),  # the switch wins over the browser
    ("zh-CN", "en-US", "zh-CN"),
    ("klingon", "zh-CN", "zh-CN"),
])
def test_the_language_of_a_request(cookie, accept, expected):
    cookies = {} if cookie is None else {words.COOKIE: cookie}
    headers = {} if accept is None else {"accept-language": accept}
    assert words.language(headers, cookies) == expected


def state(**fields) -> RunState:
    return RunState(**{"number": 2, "kind": "training", "model": "lenet", "config": {}, **fields})


@pytest.mark.parametrize("lang, s, expected", [
    ("en", state(news=News.QUEUED), "LeNet: waiting in the queue..."),
    ("zh-CN", state(news=News.QUEUED), "LeNet：正在队列中等待……"),
    ("en", state(news=News.TRAINING, epoch=1, epochs=1.5, batch=3, batches=430, images_per_second=1234.5),
     "LeNet: epoch 1/2, batch 3/430, 1,234 images/s"),
    ("zh-CN", state(news=News.TRAINING, epoch=1, epochs=1.5, batch=3, batches=430, images_per_second=1234.5),
     "LeNet：第 1/2 轮，批次 3/430，每秒 1,234 张图片"),
    ("en", state(state="stopped", news=News.STOPPED, full_epochs=1, kind="finetune"),
     "LeNet stopped after 1 full round; your drawings keep the weights they had."),
    ("en", state(state="stopped", news=News.STOPPED, full_epochs=3),
     "LeNet stopped after 3 full epochs; your drawings keep the weights they had."),
    ("en", state(state="stopped", news=News.OVERRAN, elapsed=21.4, limit_seconds=300),
     "LeNet was stopped after 21 s: a run may take at most 5 min here (DIGITNET_MAX_RUN_SECONDS), and this one "
     "ran far past it. Your drawings keep the weights they had."),
    ("zh-CN", state(state="error", news=News.FAILED, error="out of memory"), "LeNet 训练失败：out of memory"),
    ("en", state(state="done", news=News.DONE, test_acc=0.9912, train_seconds=41.2),
     "LeNet finished in 41 s: test accuracy 99.12%. Your drawings use it now."),
    ("zh-CN", state(state="done", news=News.DONE, test_acc=0.9912, train_seconds=41.2),
     "LeNet 训练完成，用时 41 秒：测试准确率 99.12%。你的手写识别现在用它。"),
    ("en", state(state="done", news=News.DONE, kind="finetune", test_acc=0.99, train_seconds=9,
                 finetune={"personal_digits": 10, "personal_acc_before": 0.4, "personal_acc_after": 0.9}),
     "LeNet fine-tuned on 10 of your digits in 9 s: they are read 40% -> 90% right, MNIST test accuracy 99.00%. "
     "Your drawings use it now."),
    ("zh-CN", state(state="done", news=News.LOADED, kind="upload", source="mine.pt"), "LeNet 的权重已从 mine.pt 载入。"),
    ("en", None, "You have not trained anything yet."),
])
def test_a_runs_facts_are_worded_in_each_language(lang, s, expected):
    words.use(lang)
    try:
        assert facts.run_message(s) == expected
    finally:
        words.use("en")


def test_every_news_has_words_in_both_languages():
    for lang in words.LANGUAGES:
        words.use(lang)
        for news in News:
            text = facts.run_message(state(news=news, error="x", source="f.pt", limit_seconds=60, test_acc=0.5,
                                           train_seconds=3))
            assert text and "{" not in text, (lang, news)
    words.use("en")


@pytest.mark.parametrize("exc, en, zh", [
    (TrainingDisabled(), "Training is turned off on this deployment", "关闭了训练"),
    (QueueFull(3), "The training queue is full (3 runs are waiting", "3 个训练在等待"),
    (TooCostly(3725.0, 12_000, 1, 300.0), "about 62 min 5 s here (12,000 steps of 1 images); runs may take at most "
                                          "5 min on this server (DIGITNET_MAX_RUN_SECONDS=300)",
     "大约需要 62 分 5 秒（12,000 步"),
    (TooFewDigits(2, 5), "needs at least 5 of your digits; you have 2", "至少需要 5 个你的数字；你现在有 2 个"),
    (AlreadyTraining(state(state="queued"), 1), "Your run 2: LeNet is waiting in the queue (position 1)",
     "你的第 2 次训练：LeNet正在队列中等待（第 1 位）"),
    (UploadTooLarge("big.pt", 21 * 2**20), "big.pt is 21.0 MB; a digitnet checkpoint is at most 20 MB", "最多 20 MB"),
    (WrongModel("a.pt", "lenet", "mlp"), "a.pt holds a LeNet model, not MLP", "a.pt 里是 LeNet 模型，不是 MLP"),
    (OverBudget(60 * 2**20, 64 * 2**20), "already hold 60 MB, and one visitor may hold at most 64 MB", "占用 60 MB"),
    (ValueError("epochs must be at most 30, got 31"), "epochs must be at most 30, got 31", "epochs must be at most 30"),
])
def test_refusals_are_worded_from_their_facts(exc, en, zh):
    assert en in facts.refusal(exc)
    words.use("zh-CN")
    try:
        assert zh in facts.refusal(exc)
    finally:
        words.use("en")


def test_the_forms_settings_keep_their_english_names():
    """A setting with Chinese words here is named in English exactly as training.py names it."""
    from digitnet.training import TrainConfig, visitor_settings

    named = [s for s in visitor_settings(TrainConfig) if f"setting_{s.name}" in words.EN]
    assert len(named) >= 12
    assert all(words.EN[f"setting_{s.name}"] == s.label for s in named)


def test_the_draw_folds_and_the_seed_mistakes_answer_in_chinese():
    """Fool it's result, a run with a seed mistake and the curves' captions, worded in the request's language."""
    import numpy as np

    from digitnet.fool import FoolResult
    from digitnet.ui.curves import captions, overlay_value
    from digitnet.ui.fool import fool_markdown
    from digitnet.ui.mistakes import run_name

    probs = [0.01] * 10
    probs[3] = 0.91
    r = FoolResult(model="lenet", original=7, target=3, label=3, fooled=True, linf=0.1234, bound=0.15, probs=probs,
                   original_probs=[0.0] * 7 + [0.98, 0.01, 0.01], seen=np.zeros((28, 28)), altered=np.zeros((28, 28)))
    run = state(config={"softmax_before_loss": True, "hflip": True})
    done = state(state="done", news=News.DONE, loss_points=[(1.0, 0.2512)], history=[
        {"epoch": 1, "val_acc": 0.9871, "val_loss": 0.05, "val_images": 5000, "epoch_end": True}])
    assert fool_markdown(r).startswith("**LeNet now reads a 3** (91%) where it read a 7 (98%). No pixel changed by "
                                       "more than **0.123** of full ink (31 of 255 grey levels)")
    assert run_name(run) == "run 2: LeNet with softmax before the loss and flipped digits"
    assert captions(done)["acc"] == "validation 98.71% at epoch 1 (all 5,000 validation images)"
    words.use("zh-CN")
    try:
        text = fool_markdown(r)
        assert text.startswith("**LeNet 现在认成 3**（91%），原来认成 7（98%）。没有一个像素的改动超过满墨的 **0.123**")
        assert "**为什么这很重要**：" in text and "Why" not in text
        assert run_name(run) == "第 2 次训练：LeNet（带错误：softmax 放在损失之前和镜像的数字）"
        assert captions(done) == {"loss": "第 1.00 轮的训练损失 0.251 · 验证损失 0.050",
                                  "acc": "第 1 轮验证准确率 98.71%（全部 5,000 张验证图像）"}
        assert captions(None)["loss"].startswith("点“训练”")
        assert overlay_value([])["caption"]["acc"] == "在上面勾选几次训练，比较它们的曲线"
    finally:
        words.use("en")


def test_the_folds_titles_are_page_texts_in_both_languages():
    """The fold titles are gr.I18n keys (Gradio's page shows them in its language); the layer view's are words.js'."""
    fixed, page = words.fixed_words(), words.page_words()
    for key, zh in [("fool_title", "骗过它：让它认成别的数字"), ("nearest_title", "你的手写最像这些"),
                    ("mistakes_title", "原文的错误")]:
        assert fixed["zh-CN"][key] == zh and key in fixed["en"] and str(words.t(key))
    assert page["zh-CN"]["layers_title"] == "每一层，实时" and page["en"]["layers_output"] == "{layer} (probabilities)"
    assert page["zh-CN"]["own"] == "你写的 {digit}：{probs}"


def test_the_draw_tabs_answers_in_chinese():
    """The Explain text, the my-digits line and the no-drawing message follow the request's language."""
    import numpy as np

    from digitnet.explain import Explanation
    from digitnet.ui.common import NO_DRAWING_MESSAGE
    from digitnet.ui.draw import explanation_markdown
    from digitnet.ui.teach import my_digits_markdown

    assert words.EN["no_drawing"] == NO_DRAWING_MESSAGE
    e = Explanation(model="lenet", digit=7, probs=[0.0] * 7 + [0.97, 0.02, 0.01], saliency=np.zeros((28, 28)),
                    saliency_image=np.zeros((1, 1, 3)), maps=np.zeros((6, 24, 24)), maps_image=np.zeros((1, 1, 3)),
                    maps_title="conv1 feature maps (6 channels, after BatchNorm and ReLU)",
                    filters=np.zeros((6, 5, 5)), filters_image=np.zeros((1, 1, 3)), seconds=0.0421)
    digits = [(np.zeros((28, 28)), 7), (np.zeros((28, 28)), 7), (np.zeros((28, 28)), 1)]
    english = explanation_markdown(e)
    assert english.startswith("**LeNet reads a 7** (97%), explained in 42 ms.") and e.maps_title in english
    assert my_digits_markdown(digits) == "**My digits**: 3 digits: 1 x1, 7 x2 · fine-tuning needs at least 5"
    words.use("zh-CN")
    try:
        text = explanation_markdown(e)
        assert text.startswith("**LeNet 认成 7**（97%），解释用时 42 毫秒。") and "conv1 特征图（6 个通道" in text
        assert "学到的 6 个 5x5 conv1 卷积核" in text and not re.search(r"\b(the|reads|Middle)\b", text)
        assert my_digits_markdown(digits) == "**我的数字**：3 个数字：1 x1, 7 x2 · 微调至少需要 5 个"
        assert my_digits_markdown([]) == "**我的数字**：还没有数字 · 微调至少需要 5 个"
        assert explanation_markdown(None) == "先写一个数字（或上传一张照片）。"
    finally:
        words.use("en")


def test_the_seed_curves_legend_is_worded_in_the_page_as_on_the_server():
    """curves.js words the seed's legend from its fields: in English exactly the server's label."""
    from digitnet.ui.curves import load_seed_curves

    seeds = load_seed_curves()
    assert seeds
    for seed in seeds.values():
        assert words.EN["js." + seed["words"]].format(**seed) == seed["label"]
        assert words.ZH["js." + seed["words"]].format(**seed).startswith("原文的配方 · " + seed["name"])
