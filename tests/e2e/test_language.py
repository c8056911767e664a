"""中文 and English in a real browser: a zh-CN browser gets the Chinese page, an English one the English page
with a switch to Chinese that changes the page at once, the server's answers after it, and a reload.

The app is ``pad_app_url`` (tests/e2e/conftest.py); no timing is asserted, every wait is generous.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .browser import ANSWER_TIMEOUT_MS, DIGIT_STROKES, PAD_CANVAS, PAGE_TIMEOUT_MS, answer, mouse_draw, screenshot

LAPTOP = {"width": 1000, "height": 900}
TABS = "button[role=tab]"


def open_page(browser, url: str, locale: str):
    """A new page on the app in a browser whose language is ``locale``, loaded."""
    context = browser.new_context(viewport=LAPTOP, locale=locale)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url)
    page.locator(PAD_CANVAS).wait_for(state="visible")
    return context, page


def test_a_chinese_browser_gets_the_chinese_page(browser, pad_app_url):
    context, page = open_page(browser, pad_app_url, "zh-CN")
    try:
        expect(page.locator(TABS)).to_have_text(["手写", "训练", "比较"])
        expect(page.locator("#intro")).to_contain_text("手写一个数字：三个 PyTorch 模型边写边识别")
        expect(page.get_by_role("button", name="在画板上放一个随机的 MNIST 数字")).to_be_visible()
        expect(page.get_by_role("button", name="为什么是这个答案？")).to_be_visible()  # the fold's title
        expect(page.locator("#digit-pad button[data-action=clear]")).to_have_text("清除")
        expect(page.locator("#language-switch")).to_have_text("English")
        expect(answer(page)).to_have_text("写一个数字")  # the answer note of a blank pad
        mouse_draw(page, DIGIT_STROKES["7"], PAD_CANVAS)
        expect(answer(page)).to_have_attribute("data-label", "7", timeout=ANSWER_TIMEOUT_MS)
        expect(answer(page)).to_have_text(re.compile(r"^是 7（\d+%）$|^不确定：7 还是 \d？$"))
        expect(page.locator("#weights-in-use")).to_contain_text("LeNet：自带，MNIST 测试")
        # The Draw tab's folds: every layer (words.js), looks most like and Fool it (gr.I18n), and their texts.
        expect(page.locator("#layers-panel summary")).to_have_text("每一层，实时")
        expect(page.locator("#layers-panel .dn-layer-name").last).to_have_text("fc3 10（概率）")
        expect(page.locator("#nearest")).to_contain_text("你的手写最像这些")
        expect(page.get_by_role("button", name="它像哪些训练数字？")).to_be_visible()
        expect(page.locator("#nearest-text")).to_contain_text("与你的手写最接近")
        page.get_by_role("button", name="骗过它：让它认成别的数字").click()
        expect(page.locator("#fool-button")).to_have_text("骗过它")
        expect(page.locator("#fool-target")).to_contain_text("最容易的")  # a radio's choice (words.js)
        expect(page.locator("#fool-text")).to_contain_text("它会寻找对模型看到的 28x28 图像最小的改动")
        page.get_by_role("button", name="为什么是这个答案？").click()
        expect(page.locator("#explain-text")).to_contain_text("看看是哪几笔决定了答案")  # reset by the drawing
        page.locator(TABS).nth(1).click()
        expect(page.get_by_role("button", name="训练", exact=True)).to_be_visible()
        expect(page.locator("#train-status")).to_contain_text("空闲")
        expect(page.locator("#recipe-note")).to_contain_text("LeNet 的快速配方")
        page.get_by_role("button", name=re.compile(r"^设置：批量大小、优化器")).click()  # the settings fold
        expect(page.get_by_text("SGD + 动量", exact=True)).to_be_visible()  # the optimizer's choices (words.js)
        expect(page.get_by_text("StepLR（原文用的）", exact=True)).to_be_visible()
        page.get_by_role("button", name="原文的错误").click()  # the seed's mistakes fold, its sentences and switches
        expect(page.locator("#mistake-softmax-before-loss")).to_contain_text("损失永远降不到约 1.46 以下")
        expect(page.get_by_label("Softmax 放在损失之前")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^这里最多 \d+ 轮（DIGITNET_MAX_EPOCHS）$"))).to_be_visible()  # the slider's hint
        page.get_by_role("button", name="原文的配方").click()  # the server's answer, in the page's language
        expect(page.locator("#recipe-note")).to_contain_text("原文的配方：")
        screenshot(page, "language-zh-CN")
    finally:
        context.close()


def test_the_english_page_switches_to_chinese_and_stays(browser, pad_app_url):
    context, page = open_page(browser, pad_app_url, "en-US")
    try:
        expect(page.locator(TABS)).to_have_text(["Draw", "Train", "Compare"])
        expect(page.get_by_role("button", name="Why this answer?")).to_be_visible()
        expect(answer(page)).to_have_text("Draw a digit")
        expect(page.locator("#language-switch")).to_have_text("中文")
        page.locator("#language-switch").click()
        # The whole page at once: Gradio's texts, the tabs not yet opened, the pad's and the answer's own.
        expect(page.locator(TABS)).to_have_text(["手写", "训练", "比较"])
        expect(page.get_by_role("button", name="为什么是这个答案？")).to_be_visible()
        expect(answer(page)).to_have_text("写一个数字")
        expect(page.get_by_role("button", name="骗过它：让它认成别的数字")).to_be_visible()
        expect(page.locator("#layers-panel summary")).to_have_text("每一层，实时")
        expect(page.locator("#digit-pad button[data-action=clear]")).to_have_text("清除")
        expect(page.locator("#language-switch")).to_have_text("English")
        assert {c["name"]: c["value"] for c in context.cookies()}.get("digitnet-lang") == "zh-CN"
        # The server's answers follow the switch: Stop with no run says so in Chinese.
        page.locator(TABS).nth(1).click()
        page.get_by_role("button", name="停止", exact=True).click()
        expect(page.locator("#train-answer")).to_contain_text("你没有正在等待或运行的训练", timeout=ANSWER_TIMEOUT_MS)
        page.reload()
        page.locator(PAD_CANVAS).wait_for(state="visible")
        expect(page.locator(TABS)).to_have_text(["手写", "训练", "比较"])
        expect(answer(page)).to_have_text("写一个数字")
        page.locator("#language-switch").click()  # and back
        expect(page.locator(TABS)).to_have_text(["Draw", "Train", "Compare"])
        expect(answer(page)).to_have_text("Draw a digit")
    finally:
        context.close()


def test_a_refused_upload_is_told_in_chinese(browser, pad_app_url, tmp_path):
    """A library error reaches a Chinese page in Chinese: a weights file that is no checkpoint, in the toast."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    context, page = open_page(browser, pad_app_url, "zh-CN")
    try:
        page.locator(TABS).nth(1).click()
        page.get_by_role("button", name="你的模型：下载或载入权重").click()  # the weights fold
        with page.expect_file_chooser() as chooser:
            page.get_by_role("button", name="从文件载入权重").click()
        chooser.value.set_files(str(junk))
        toast = page.locator(".toast-body", has_text="junk.pt")
        expect(toast).to_contain_text("无法读取检查点 junk.pt（文件被截断、已损坏，或不是安全的 digitnet 检查点）",
                                      timeout=ANSWER_TIMEOUT_MS)
        expect(toast).not_to_contain_text("could not be read")
        screenshot(page, "language-zh-CN-refused-upload")
    finally:
        context.close()
