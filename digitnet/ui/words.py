"""Every word the app shows people, in English and Simplified Chinese, and the one place that picks between them.

Three kinds of text come from here, from the same two dictionaries:
- the page's fixed texts (tab names, headings, buttons, labels, help): ``t(key)``, a ``gr.I18n`` key that
  Gradio's page translates by the browser's language (or the page's language switch);
- what handlers answer (a run's status, a refusal, a note): ``say(key, **numbers)`` in the language of the
  request being answered (``language``: the switch's cookie, else the browser's Accept-Language);
- the texts the page's own JavaScript writes (the answer, the pad, the charts): the ``js.*`` keys, handed to
  the page in a head script (``head_script``) and picked there by the same rule.

The library (``digitnet/`` outside ``ui/``) returns facts (``run.News``, numbers, exceptions with fields);
``ui/facts.py`` words them with these dictionaries. Numbers stay as they are in both languages.
"""

from __future__ import annotations

import contextvars
import json

import gradio as gr

from . import words_folds


LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"
COOKIE = "digitnet-lang"  # set by the page's language switch (words.js); read with every request

EN: dict[str, str] = {
    # ---- the page's fixed texts (gr.I18n keys: no braces, the page's formatter would read them) ----
    "intro": "# digitnet\nDraw a digit: three PyTorch models read it as you draw. "
             "Or train your own on MNIST and watch the curves grow.",
    "switch": "中文",  # the switch names the other language
    "tab_draw": "Draw", "tab_train": "Train", "tab_compare": "Compare",
    "model": "Model",
    "weights_pick": "Weights to draw with",
    "all_shipped": "Shipped weights for all three",
    "random_digit": "Put a random MNIST digit on the pad",
    "photo_fold": "...or upload a photo or scan of a digit",
    "photo": "Photo or scan (dark ink on paper, or light on dark)",
    "why": "Why this answer?",
    "explain": "Explain this answer",
    "explain_prompt": "See which of your strokes decided the answer and what the model's first layer made of "
                      "them: draw, then click the button.",
    "saliency": "Saliency: red for the answer, blue against",
    "first_layer": "First layer",
    "filters": "conv1 filters (5x5, learned)",
    "teach": "Teach it your handwriting",
    "teach_help": "Wrong answer? Say which digit it was and add the drawing to *my digits*. They are yours alone "
                  "and are kept in this browser (save them as a file to take them elsewhere). With at least five, "
                  "fine-tune the model selected above on them: a short run that mixes your digits (shifted, "
                  "turned, scaled) with MNIST, so the model learns your style without forgetting MNIST. It waits "
                  "its turn in the training queue (Train tab); your drawings use the result.",
    "truth": "That was a ...",
    "add_digit": "Add to my digits",
    "my_gallery": "My digits (latest first)",
    "finetune": "Fine-tune on my digits",
    "save_digits": "Save my digits as a file",
    "load_digits": "Load my digits from a file",
    "forget_digits": "Forget my digits",
    "digits_file": "Your digits, ready to download",
    "training_off": "### Training is turned off here\nThis deployment serves the shipped models only "
                    "(`DIGITNET_ALLOW_TRAINING=0`). Run the app on your own machine to train: `python app.py`.",
    # The Train form's settings (training.py's visitor settings; one without a key here shows its own label).
    "setting_model": "model",
    "setting_epochs": "epochs",
    "setting_batch_size": "batch size",
    "setting_optimizer": "optimizer",
    "setting_lr": "learning rate",
    "setting_schedule": "schedule",
    "setting_weight_decay": "weight decay",
    "setting_label_smoothing": "label smoothing",
    "setting_dropout": "dropout",
    "setting_augment": "augmentation",
    "setting_freeze": "FreezeOut",
    "setting_seed": "seed",
    "setting_momentum": "momentum",
    "setting_step_size": "StepLR step size",
    "setting_gamma": "StepLR gamma",
    "settings": "Settings", "more_settings": "More settings",
    "fast_recipe": "Fast recipe",
    "recipe_seed_note": "**The seed article's recipe**: {epochs} epochs of SGD (lr 0.01, momentum 0.9) at batch 64, "
                        "StepLR; {about}. The curves' x-axis follows the run as it goes.",
    "recipe_fast_note": "**Fast recipe** for {name}: {epochs} epochs of {optimizer} at batch {batch}, one-cycle; {about}.",
    "about_clock": "about {clock} here", "about_minutes": "about {minutes} minutes here",
    "seed_recipe": "The seed article's recipe",
    "train": "Train", "stop": "Stop",
    "confusion_fold": "Confusion matrix and mistakes (test set)",
    "mistakes": "Most confident mistakes: true digit → read as · how sure",
    "runs_fold": "Your runs: compare their curves",
    "runs_table": "Your runs (newest first)",
    "overlay": "Overlay these runs",
    "weights_fold": "Your models: download or load weights",
    "weights_help": "Download the weights your drawings use for the model selected on the left (the same "
                    "checkpoint format as the shipped ones), or load a checkpoint file saved earlier.",
    "download": "Download these weights",
    "upload": "Load weights from a file",
    "compare_help": "### The three models side by side\nParameters are counted on the loaded model; test accuracy "
                    "comes from its checkpoint (the run that made the weights); drawn-digit accuracy from "
                    "`benchmarks/drawn.py` (digits drawn like on the pad). Latency and training step are measured "
                    "now, on this machine, the same way for all three: latency is the median of single-image "
                    "predictions with one thread, as the Draw tab runs them; training step is the median time of "
                    "one training step (forward, backward and AdamW update) on a batch, also with one thread, so "
                    "that the figures repeat and compare even while someone's run trains.",
    "measure": "Measure again",
    "status_idle_line": "💤 **idle** · Pick a model and click Train: your run joins the queue.",
    "results_none": "Results appear here when a run finishes.",
    "results_line": "### {run}, {what}: test accuracy **{acc}**\n{wrong} of {total} test digits misread · trained in "
                    "{seconds} s · your drawings use these weights now (Draw tab); download them below.",
    "finetuned_on_yours": "{name} fine-tuned on your digits", "read_as": "{true} → {pred} · {prob}",
    "results_unfinished": "The last run did not finish: no test results, and your drawings keep their weights.",
    "models_table": "Models",
    # ---- what handlers answer (str.format placeholders) ----
    "run_title": "run {number}: {name}",
    "run_title_finetune": "run {number}: {name} fine-tuned",
    "run_title_upload": "run {number}: {name} from a file",
    "shipped": "shipped",
    "weights_line": "**{name}**: {who}, {acc} on MNIST test", "weights_unavailable": "**{name}** is unavailable: {why}",
    "run_number": "run {number}", "your_run": "your run {number}",
    "state_idle": "idle", "state_queued": "queued", "state_running": "running", "state_done": "done",
    "state_stopped": "stopped", "state_error": "error",
    "epoch": "epoch", "epochs": "epochs", "round": "round", "rounds": "rounds",
    "news_queued": "{name}: waiting in the queue...",
    "news_loading": "{name}: loading data...",
    "news_training": "{name}: {unit} {epoch}/{epochs}, batch {batch}/{batches}, {speed} images/s",
    "news_dropped": "{name}: taken out of the queue before it started.",
    "news_shutdown": "The server is shutting down: the run was taken out of the queue.",
    "news_not_started": "{name}: stopped before it started.",
    "news_failed": "{name} training failed: {error}",
    "news_overran": "{name} was stopped after {seconds} s: a run may take at most {limit} here "
                    "(DIGITNET_MAX_RUN_SECONDS), and this one ran far past it. Your drawings keep the weights they had.",
    "news_stopped": "{name} stopped after {done} full {units}; your drawings keep the weights they had.",
    "news_done": "{name} finished in {seconds} s: {accuracy}. Your drawings use it now.",
    "news_done_finetune": "{name} fine-tuned on {digits} of your digits in {seconds} s: they are read {before} -> "
                          "{after} right, MNIST {accuracy}. Your drawings use it now.",
    "news_loaded": "{name} weights loaded from {source}.",
    "test_accuracy": "test accuracy {acc}", "no_test_set": "no test set",
    "status_idle": "You have not trained anything yet.",
    "minutes": "{m} min", "minutes_seconds": "{m} min {s} s", "seconds": "{s} s",
    "refused_disabled": "Training is turned off on this deployment (DIGITNET_ALLOW_TRAINING=0).",
    "refused_queue_full": "The training queue is full ({waiting} runs are waiting, the most this server allows). "
                          "Nothing was queued: try again in a few minutes.",
    "refused_cost": "This run would take about {seconds} here ({steps} steps of {batch} images); runs may take at "
                    "most {limit} on this server (DIGITNET_MAX_RUN_SECONDS={raw}). Use fewer epochs or a larger batch.",
    "refused_digits": "Fine-tuning needs at least {need} of your digits; you have {have}. Correct a few more "
                      "predictions with \"Add to my digits\" first.",
    "refused_waiting": "Your {title} is waiting in the queue (position {position}). A visitor has one run at a "
                       "time: stop it, or wait for it to finish, then start the next.",
    "refused_training": "Your {title} is training now. A visitor has one run at a time: stop it, or wait for it "
                        "to finish, then start the next.",
    "refused_too_large": "{name} is {mb} MB; a digitnet checkpoint is at most {limit} MB",
    "refused_wrong_model": "{name} holds a {found} model, not {wanted}",
    "refused_budget": "Not loaded: your runs, weights in use and digits already hold {held} MB, and one visitor "
                      "may hold at most {limit} MB here. Switch back to the shipped weights or forget some digits.",
    "train_refused": "⚠️ {reason} Nothing new was queued.",
    "train_running": "Your {title} is training.",
    "train_queued": "Queued as your {title} (number {position} in the queue).",
    "stop_none": "You have no run waiting or running.",
    "finetune_queued": "Fine-tune queued as your {title}: watch it on the Train tab. Your drawings use the result "
                       "once it is done.",
    "loaded_as": "Loaded as your {title} ({acc} on MNIST test): your drawings use it now.",
    "no_file": "No file was uploaded.",
    "random_note": "On the pad: MNIST test digit #{index}, labelled **{label}**.",
    "photo_empty": "No digit found in the photo: dark ink on light paper, or light on dark, works best.",
    "photo_note": "On the pad: your photo as the models read it (28x28).",
    "pick_truth": "Pick the digit it really was (0-9) under \"That was a ...\", then add it.",
    "no_digits_yet": "There are no digits to save yet: correct a prediction with \"Add to my digits\" first.",
    # ---- texts the page's JavaScript writes ({name} placeholders, filled in words.js) ----
    "js.blank": "Draw a digit",
    "js.not_digit": "That doesn't look like a digit",
    "js.unsure": "Not sure: {digit} or {other}?",
    "js.answer": "It's a {digit} ({pct})",
    "js.unavailable": "{name} is unavailable: {error}",
    "js.not_loaded": "{name} is not loaded yet",
    "js.card_not_digit": "not a digit", "js.card_unsure": "not sure",
    "js.source_yours": "{name}: your {title} · computed in this page",
    "js.source_shipped": "{name}: shipped weights · computed in this page",
    "js.pad_label": "Draw one digit, big or small, anywhere",
    "js.pad_hint": "draw here", "js.pad_undo": "Undo last stroke", "js.pad_clear": "Clear",
    "js.pad_aria": "Drawing pad: draw one digit",
    "js.ten_digits": "All ten digits", "js.seen_aria": "What the model saw, 28x28",
    "js.seen": "What the model saw (28x28)", "js.three_models": "The three models",
    "js.x_axis": "x-axis:", "js.x_epochs": "epochs", "js.x_seconds": "wall seconds",
    "js.seed_faint": "the seed article's recipe, faint",
    "js.loss": "Loss", "js.accuracy": "Accuracy (%)", "js.x_wall": "wall seconds (data loading included)",
    "js.waiting": "🕒 waiting: number {position} in the queue",
    "js.starts_in": " · starts in about {clock}", "js.starting": " · starting any moment",
    "js.at_batch": "epoch {epoch}/{passes} · batch {batch}/{batches}", "js.of_epochs": "{done} of {epochs} epochs",
    "js.loading": "loading data...", "js.eta": "ETA {clock}", "js.done_in": "done in {clock}",
    "js.stopped": "stopped", "js.error": "error",
    "js.probe": "The model reading 16 test digits (6 hard ones), at every validation point",
}

ZH: dict[str, str] = {
    "intro": "# digitnet\n手写一个数字：三个 PyTorch 模型边写边识别。也可以在 MNIST 上训练你自己的模型，看着曲线一点点长出来。",
    "switch": "English",
    "tab_draw": "手写", "tab_train": "训练", "tab_compare": "比较",
    "model": "模型",
    "weights_pick": "手写识别所用的权重",
    "all_shipped": "三个模型都用自带权重",
    "random_digit": "在画板上放一个随机的 MNIST 数字",
    "photo_fold": "……或上传一张数字的照片或扫描件",
    "photo": "照片或扫描件（白纸黑字，或黑底白字）",
    "why": "为什么是这个答案？",
    "explain": "解释这个答案",
    "explain_prompt": "看看是哪几笔决定了答案，以及模型第一层从中看到了什么：先写一个数字，再点按钮。",
    "saliency": "显著图：红色支持这个答案，蓝色反对",
    "first_layer": "第一层",
    "filters": "conv1 卷积核（5x5，学到的）",
    "teach": "教它认你的笔迹",
    "teach_help": "答错了？选出它其实是哪个数字，把这次手写加入“我的数字”。它们只属于你，保存在这个浏览器里（可以存成文件带到别处）。"
                  "攒够五个以后，就可以用它们微调上面选中的模型：一次很短的训练，把你的数字（平移、旋转、缩放后）和 MNIST 混在一起，"
                  "让模型学会你的写法而不忘掉 MNIST。它在训练队列里排队（见“训练”页）；完成后你的手写就用新的结果识别。",
    "truth": "它其实是……",
    "add_digit": "加入我的数字",
    "my_gallery": "我的数字（最新的在前）",
    "finetune": "用我的数字微调",
    "save_digits": "把我的数字存成文件",
    "load_digits": "从文件载入我的数字",
    "forget_digits": "清除我的数字",
    "digits_file": "你的数字，可以下载了",
    "training_off": "### 这里关闭了训练\n此部署只提供自带的模型（`DIGITNET_ALLOW_TRAINING=0`）。"
                    "想训练的话，在你自己的电脑上运行：`python app.py`。",
    "setting_model": "模型",
    "setting_epochs": "轮数",
    "setting_batch_size": "批量大小",
    "setting_optimizer": "优化器",
    "setting_lr": "学习率",
    "setting_schedule": "学习率调度",
    "setting_weight_decay": "权重衰减",
    "setting_label_smoothing": "标签平滑",
    "setting_dropout": "dropout 比例",
    "setting_augment": "数据增强",
    "setting_freeze": "FreezeOut（逐层冻结）",
    "setting_seed": "随机种子",
    "setting_momentum": "动量",
    "setting_step_size": "StepLR 步长",
    "setting_gamma": "StepLR 衰减系数 gamma",
    "settings": "设置", "more_settings": "更多设置",
    "fast_recipe": "快速配方",
    "recipe_seed_note": "**原文的配方**：{epochs} 轮 SGD（lr 0.01，momentum 0.9），批量 64，StepLR；{about}。"
                        "曲线的横轴随训练进行而延伸。",
    "recipe_fast_note": "{name} 的**快速配方**：{epochs} 轮 {optimizer}，批量 {batch}，one-cycle；{about}。",
    "about_clock": "在这里大约 {clock}", "about_minutes": "在这里大约 {minutes} 分钟",
    "seed_recipe": "原文的配方",
    "train": "训练", "stop": "停止",
    "confusion_fold": "混淆矩阵与错例（测试集）",
    "mistakes": "最有把握的错误：真实数字 → 认成 · 把握",
    "runs_fold": "你的训练：比较它们的曲线",
    "runs_table": "你的训练（最新的在前）",
    "overlay": "叠加这些训练的曲线",
    "weights_fold": "你的模型：下载或载入权重",
    "weights_help": "下载左边所选模型当前用于识别你手写的权重（与自带权重相同的检查点格式），或载入之前保存的检查点文件。",
    "download": "下载这些权重",
    "upload": "从文件载入权重",
    "compare_help": "### 三个模型并排比较\n参数量按载入的模型统计；测试准确率来自其检查点（训练出这些权重的那次训练）；"
                    "手写数字准确率来自 `benchmarks/drawn.py`（像在画板上那样画出的数字）。延迟和训练步耗时是现在在这台机器上"
                    "用同样的方法测的：延迟是单线程单张图片预测的中位数，与“手写”页一致；训练步是一批图片上一次训练步"
                    "（前向、反向和 AdamW 更新）的中位耗时，同样用单线程，所以即使有人在训练，这些数字也可重复、可比较。",
    "measure": "重新测量",
    "status_idle_line": "💤 **空闲** · 选一个模型，点“训练”：你的训练会加入队列。",
    "results_none": "训练完成后，结果会显示在这里。",
    "results_line": "### {run}，{what}：测试准确率 **{acc}**\n{total} 个测试数字中认错 {wrong} 个 · 训练用时 {seconds} 秒 · "
                    "你的手写识别现在用这些权重（“手写”页）；可以在下面下载。",
    "finetuned_on_yours": "用你的数字微调的 {name}", "read_as": "{true} → {pred} · {prob}",
    "results_unfinished": "上一次训练没有完成：没有测试结果，你的手写识别仍用原来的权重。",
    "models_table": "模型",
    "run_title": "第 {number} 次训练：{name}",
    "run_title_finetune": "第 {number} 次训练：{name}（微调）",
    "run_title_upload": "第 {number} 次训练：{name}（来自文件）",
    "shipped": "自带",
    "weights_line": "**{name}**：{who}，MNIST 测试 {acc}", "weights_unavailable": "**{name}** 不可用：{why}",
    "run_number": "第 {number} 次训练", "your_run": "你的第 {number} 次训练",
    "state_idle": "空闲", "state_queued": "排队中", "state_running": "训练中", "state_done": "已完成",
    "state_stopped": "已停止", "state_error": "出错",
    "epoch": "轮", "epochs": "轮", "round": "回合", "rounds": "回合",
    "news_queued": "{name}：正在队列中等待……",
    "news_loading": "{name}：正在载入数据……",
    "news_training": "{name}：第 {epoch}/{epochs} {unit}，批次 {batch}/{batches}，每秒 {speed} 张图片",
    "news_dropped": "{name}：在开始前已移出队列。",
    "news_shutdown": "服务器正在关闭：这次训练已移出队列。",
    "news_not_started": "{name}：在开始前已停止。",
    "news_failed": "{name} 训练失败：{error}",
    "news_overran": "{name} 运行 {seconds} 秒后被停止：这里一次训练最多 {limit}（DIGITNET_MAX_RUN_SECONDS），"
                    "而它远远超出了。你的手写识别仍用原来的权重。",
    "news_stopped": "{name} 在完成 {done} 整{units}后停止；你的手写识别仍用原来的权重。",
    "news_done": "{name} 训练完成，用时 {seconds} 秒：{accuracy}。你的手写识别现在用它。",
    "news_done_finetune": "{name} 已用你的 {digits} 个数字微调，用时 {seconds} 秒：你的数字识别正确率 {before} -> {after}，"
                          "MNIST {accuracy}。你的手写识别现在用它。",
    "news_loaded": "{name} 的权重已从 {source} 载入。",
    "test_accuracy": "测试准确率 {acc}", "no_test_set": "没有测试集",
    "status_idle": "你还没有训练过任何模型。",
    "minutes": "{m} 分钟", "minutes_seconds": "{m} 分 {s} 秒", "seconds": "{s} 秒",
    "refused_disabled": "此部署关闭了训练（DIGITNET_ALLOW_TRAINING=0）。",
    "refused_queue_full": "训练队列已满（{waiting} 个训练在等待，已达此服务器的上限）。没有加入队列：请过几分钟再试。",
    "refused_cost": "这次训练在这里大约需要 {seconds}（{steps} 步，每步 {batch} 张图片）；此服务器上一次训练最多 {limit}"
                    "（DIGITNET_MAX_RUN_SECONDS={raw}）。请减少轮数或加大批量。",
    "refused_digits": "微调至少需要 {need} 个你的数字；你现在有 {have} 个。先用“加入我的数字”纠正几次识别结果。",
    "refused_waiting": "你的{title}正在队列中等待（第 {position} 位）。每位访客一次只能有一个训练：先停止它，或等它结束，再开始下一个。",
    "refused_training": "你的{title}正在训练。每位访客一次只能有一个训练：先停止它，或等它结束，再开始下一个。",
    "refused_too_large": "{name} 有 {mb} MB；digitnet 的检查点最多 {limit} MB",
    "refused_wrong_model": "{name} 里是 {found} 模型，不是 {wanted}",
    "refused_budget": "未载入：你的训练、正在使用的权重和数字已占用 {held} MB，这里每位访客最多 {limit} MB。"
                      "请切换回自带权重，或清除一些数字。",
    "train_refused": "⚠️ {reason} 没有新的训练加入队列。",
    "train_running": "你的{title}正在训练。",
    "train_queued": "已排队，是你的{title}（队列中第 {position} 位）。",
    "stop_none": "你没有正在等待或运行的训练。",
    "finetune_queued": "微调已排队，是你的{title}：在“训练”页查看进度。完成后你的手写识别会用新的结果。",
    "loaded_as": "已载入为你的{title}（MNIST 测试 {acc}）：你的手写识别现在用它。",
    "no_file": "没有上传文件。",
    "random_note": "画板上：MNIST 测试数字 #{index}，标签为 **{label}**。",
    "photo_empty": "照片里没有找到数字：白纸黑字或黑底白字效果最好。",
    "photo_note": "画板上：模型读到的你的照片（28x28）。",
    "pick_truth": "先在“它其实是……”下选出它其实是哪个数字（0-9），再加入。",
    "no_digits_yet": "还没有可保存的数字：先用“加入我的数字”纠正一次识别结果。",
    "js.blank": "写一个数字",
    "js.not_digit": "这看起来不像数字",
    "js.unsure": "不确定：{digit} 还是 {other}？",
    "js.answer": "是 {digit}（{pct}）",
    "js.unavailable": "{name} 不可用：{error}",
    "js.not_loaded": "{name} 尚未载入",
    "js.card_not_digit": "不是数字", "js.card_unsure": "不确定",
    "js.source_yours": "{name}：你的{title} · 在本页计算",
    "js.source_shipped": "{name}：自带权重 · 在本页计算",
    "js.pad_label": "写一个数字，大小位置随意",
    "js.pad_hint": "在这里写", "js.pad_undo": "撤销上一笔", "js.pad_clear": "清除",
    "js.pad_aria": "画板：写一个数字",
    "js.ten_digits": "全部十个数字", "js.seen_aria": "模型看到的图像，28x28",
    "js.seen": "模型看到的（28x28）", "js.three_models": "三个模型",
    "js.x_axis": "横轴：", "js.x_epochs": "轮数", "js.x_seconds": "实际秒数",
    "js.seed_faint": "原文配方的曲线（浅色）",
    "js.loss": "损失", "js.accuracy": "准确率（%）", "js.x_wall": "实际秒数（含数据载入）",
    "js.waiting": "🕒 等待中：队列第 {position} 位",
    "js.starts_in": " · 大约 {clock} 后开始", "js.starting": " · 马上开始",
    "js.at_batch": "第 {epoch}/{passes} 轮 · 批次 {batch}/{batches}", "js.of_epochs": "{done} / {epochs} 轮",
    "js.loading": "正在载入数据……", "js.eta": "预计还需 {clock}", "js.done_in": "用时 {clock} 完成",
    "js.stopped": "已停止", "js.error": "出错",
    "js.probe": "模型在每个验证点对 16 个测试数字（其中 6 个难认）的识别",
}

EN.update(words_folds.EN)  # the Draw tab's folds, the seed's mistakes, the curves (words_folds.py)
ZH.update(words_folds.ZH)
WORDS = {"en": EN, "zh-CN": ZH}
_language: contextvars.ContextVar[str] = contextvars.ContextVar("digitnet_language", default=DEFAULT)


def normalise(tag: str | None) -> str | None:
    """'zh-CN', 'zh', 'zh-Hans-CN', 'zh-TW' -> 'zh-CN'; 'en-GB' -> 'en'; anything else None."""
    tag = (tag or "").strip().lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def language(headers=None, cookies=None) -> str:
    """The language to answer a request in: the switch's cookie, else the first of the browser's languages
    we have (Accept-Language, in the browser's order), else English."""
    chosen = normalise((cookies or {}).get(COOKIE))
    if chosen:
        return chosen
    accept = (headers or {}).get("accept-language") or ""
    for part in accept.split(","):
        found = normalise(part.split(";")[0])
        if found:
            return found
    return DEFAULT


def use(lang: str) -> None:
    """Answer in ``lang`` for the rest of this handler call (``common.visitor_handler`` sets it per request)."""
    _language.set(lang if lang in WORDS else DEFAULT)


def current() -> str:
    """The language of the request being answered."""
    return _language.get()


def say(key: str, **values) -> str:
    """The text ``key`` in the current language with ``values`` filled in (English where a key lacks one)."""
    text = WORDS[current()].get(key) or EN[key]
    return text.format(**values) if values else text


def t(key: str) -> gr.i18n.I18nData:
    """A fixed text of the page, translated there by the page's language (a ``gr.I18n`` key)."""
    assert key in FIXED["en"], key
    return I18N(key)


def page_words() -> dict[str, dict[str, str]]:
    """The texts the page's JavaScript writes, per language, without their ``js.`` prefix, and the tabs' names
    (words.js renames the tabs Gradio leaves in the old language after a switch)."""
    return {lang: {k.removeprefix("js."): v for k, v in words.items() if k.startswith(("js.", "tab_"))}
            for lang, words in WORDS.items()}


def fixed_words() -> dict[str, dict[str, str]]:
    """The page's fixed texts per language: what ``gr.I18n`` gets (no placeholders, no JavaScript texts)."""
    return {lang: {k: v for k, v in words.items() if not k.startswith("js.") and "{" not in v}
            for lang, words in WORDS.items()}


def head_script() -> str:
    """The page's dictionaries as a script for <head>: words.js reads ``window.DigitNetDictionary``."""
    data = json.dumps({"languages": list(LANGUAGES), "cookie": COOKIE, "words": page_words()}, ensure_ascii=False)
    return f"<script>window.DigitNetDictionary = {data.replace('</', '<' + chr(92) + '/')};</script>"


def setting_label(name: str, label: str, lang: str = DEFAULT) -> str:
    """A Train form setting's name in ``lang`` (its own ``label`` where the dictionaries have none)."""
    return WORDS[lang].get(f"setting_{name}", label)


def form_label(name: str, label: str):
    """A Train form control's label: "Batch size" / "批量大小" (a gr.I18n key registered before launch), or the
    setting's own label, capitalised, where the dictionaries have none."""
    key = f"setting_{name}"
    if key not in EN:
        return label[0].upper() + label[1:]
    for lang in LANGUAGES:
        text = WORDS[lang][key]
        FIXED[lang][key + "_label"] = text[0].upper() + text[1:]
    return I18N(key + "_label")


def in_both(key: str, text) -> gr.i18n.I18nData:
    """A text the page shows before any request, computed now in each language (``text()`` calls ``say``) and
    registered as the fixed text ``key`` (before launch: Gradio reads the dictionaries then)."""
    for lang in LANGUAGES:
        token = _language.set(lang)
        try:
            FIXED[lang][key] = text()
        finally:
            _language.reset(token)
    return I18N(key)


def use_request(request) -> None:
    """Answer a request in its visitor's language (the switch's cookie, else the browser's)."""
    use(language(getattr(request, "headers", None), getattr(request, "cookies", None)))


def listing(key: str, head: str, settings) -> gr.i18n.I18nData:
    """A fixed text made of others, "Settings: batch size, optimizer, ..." in each language, registered as ``key``
    (before launch: Gradio reads the dictionaries then)."""
    for lang in LANGUAGES:
        names = [setting_label(s.name, s.label, lang) for s in settings]
        sep, colon = (", ", ": ") if lang == "en" else ("、", "：")
        FIXED[lang][key] = WORDS[lang][head] + colon + sep.join(names) + (sep + "..." if lang == "en" else "……")
    return I18N(key)


FIXED = fixed_words()
I18N = gr.I18n(**FIXED)  # Blocks.launch(i18n=I18N): app.LAUNCH_OPTIONS
