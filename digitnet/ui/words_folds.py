"""More of the page's words: the Draw tab's folds (Fool it, looks most like, every layer) and answers (Explain,
my digits), the seed article's mistakes, the curves' captions and legends, the run table, the Compare table's
cells. (key, English, Chinese) rows like ``words_page.py``'s
(same rules: a key without ``js.`` and without braces is a fixed text, ``t(key)``; one with braces is for
``say``; ``js.`` keys are for the page's JavaScript, ``DigitNetWords.t``), which ``words.py`` merges into its
dictionaries. No imports: words.py imports this module.
"""

ROWS: list[tuple[str, str, str]] = [
    # ---- Fool it (ui/fool.py) ----
    ("fool_title", "Fool it: make it read something else", "骗过它：让它认成别的数字"),
    ("fool_target", "Make it read", "让它认成"),
    ("fool_button", "Fool it", "骗过它"),
    ("fool_seen", "What the model saw", "模型看到的"),
    ("fool_altered", "Altered", "改动后"),
    ("fool_diff", "The change, amplified (red added, blue removed)", "改动（放大显示：红色为加墨，蓝色为减墨）"),
    ("fool_probs", "Its probabilities now", "它现在的概率"),
    ("fool_prompt",
     "Draw a digit, pick a target (or let it find the easiest one) and click the button: it searches "
     "for the smallest change to the 28x28 image the model saw that makes it read another digit.",
     "写一个数字，选一个目标（或让它自己找最容易的那个），再点按钮：它会寻"
     "找对模型看到的 28x28 图像最小的改动，让模型认成另一个数字。"),
    ("fool_why",
     "**Why this matters:** a change too faint for you to notice can make a model that reads 99% "
     "of digits right give a confident wrong answer, so a model that scores well is not yet one "
     "you can trust where someone may alter its input (cheques, road signs, spam filters).",
     "**为什么这很重要**：一个淡到你察觉不到的改动，就能让一个 99% 的数字都认得对的模型自信地答错。所"
     "以分数高的模型，在有人可能篡改输入的地方（支票、路标、垃圾邮件过滤）还不能放心信任。"),
    ("fool_blank", "Draw a digit first: there is nothing to change on a blank canvas.",
     "先写一个数字：空白画布上没有什么可改的。"),
    ("fool_fooled", "**{name} now reads a {label}** ({prob}) where it read a {original} ({original_prob}).",
     "**{name} 现在认成 {label}**（{prob}），原来认成 {original}（{original_prob}）。"),
    ("fool_size",
     "No pixel changed by more than **{linf}** of full ink ({grey} of "
     "255 grey levels); the largest change tried is {most}.",
     "没有一个像素的改动超过满墨的 **{linf}**（255 级灰度中的 {grey} 级）；尝试的最大改动是 {most}。"),
    ("fool_held",
     "**{name} still reads a {label}**: no change up to {most} made "
     "it read a {target}. Try another target, or the easiest.",
     "**{name} 仍然认成 {label}**：改动到 {most} 也没能让它认成 {target}。换一个目标，或选 easiest（最容易的）。"),
    ("fool_best", "The best try changed pixels by up to **{linf}** of full ink ({grey} of 255 grey levels).",
     "最好的一次尝试，像素改动最多为满墨的 **{linf}**（255 级灰度中的 {grey} 级）。"),
    # ---- Your drawing looks most like these (ui/nearest.py) ----
    ("nearest_title", "Your drawing looks most like these", "你的手写最像这些"),
    ("nearest_button", "Which training digits does it look like?", "它像哪些训练数字？"),
    ("nearest_prompt",
     "The 8 MNIST training images whose features in the model's last hidden layer are closest to your "
     "drawing's (cosine similarity): what the model thinks your digit is like. Draw, then click the button.",
     "在模型最后一个隐藏层的特征上与你的手写最接近（余弦相似度）的 8 张 "
     "MNIST 训练图像：模型觉得你的数字像什么。先写一个数字，再点按钮。"),
    ("nearest_blank", "Draw a digit first: a blank pad looks like nothing.", "先写一个数字：空白的画板什么也不像。"),
    ("nearest_no_mnist",
     "The MNIST training set is not available on this server, so there is nothing to compare with: {error}",
     "此服务器上没有 MNIST 训练集，所以没有可比较的：{error}"),
    ("nearest_found",
     "**Your drawing looks most like these** ({name}): {count} of {total} are {digit}s. "
     "Under each: its label, its number in the training set, and the cosine similarity.",
     "**你的手写最像这些**（{name}）：{total} 个中有 {count} 个是 "
     "{digit}。每张图下面：它的标签、它在训练集里的编号和余弦相似度。"),
    ("nearest_alt", "MNIST training image {index}, a {label}", "MNIST 训练图像 {index}，是一个 {label}"),
    # ---- Every layer, live (ui/layers.py, static/layers.js) ----
    ("js.layers_title", "Every layer, live", "每一层，实时"),
    ("js.layers_note",
     "What each layer of the chosen model makes of your drawing, computed in this page as you draw: "
     "conv feature maps after ReLU and pooling (white = strongest), fully connected units as bars.",
     "所选模型的每一层怎样看你的手写，在本页边写边算：卷积特征图经过 "
     "ReLU 和池化（越白越强），全连接层的每个单元画成一根柱。"),
    ("js.layers_empty", "Draw a digit to see every layer.", "写一个数字，就能看到每一层。"),
    ("js.layers_output", "{layer} (probabilities)", "{layer}（概率）"),
    # ---- The seed article's mistakes (ui/mistakes.py) ----
    ("mistakes_title", "The seed article's mistakes", "原文的错误"),
    ("mistakes_intro",
     "The article's code trains with two mistakes that still run. Turn one on, train, then "
     "tick this run and one without it under \"Your runs\" to overlay their curves.",
     "原文的代码带着两个仍能运行的错误训练。打开其中一个并训练，然后在“你的训"
     "练”下勾选这次训练和一次没有这个错误的训练，叠加比较它们的曲线。"),
    ("mistake_softmax_before_loss",
     "The model's output goes through softmax and then into CrossEntropyLoss, which applies "
     "log-softmax again: the loss can never fall below about 1.46 and its gradients fade as "
     "the model grows sure, so it learns more slowly and ends less accurate.",
     "模型的输出先经过 softmax，再进入 CrossEntropyLoss，而后者会再做一次 log-softmax：损失永远"
     "降不到约 1.46 以下，而且模型越有把握梯度越弱，所以它学得更慢，最终准确率也更低。"),
    ("mistake_hflip",
     "Half of the training digits are mirrored left to right: a mirrored 3, 7 or 2 is no digit anyone "
     "writes, so the model spends its effort on shapes it will never see and confuses those it will.",
     "一半的训练数字被左右镜像：镜像的 3、7 或 2 不是任何人会写的数字，所以模"
     "型把力气花在它永远见不到的形状上，反而混淆了它会见到的那些。"),
    ("setting_softmax_before_loss", "softmax before the loss", "softmax 放在损失之前"),
    ("setting_hflip", "random horizontal flips", "随机水平翻转"),
    ("mistake_short_softmax_before_loss", "softmax before the loss", "softmax 放在损失之前"),
    ("mistake_short_hflip", "flipped digits", "镜像的数字"),
    ("run_with_mistakes", "{title} with {mistakes}", "{title}（带错误：{mistakes}）"),
    # ---- the curves (ui/curves.py captions; static/curves.js legends and captions) ----
    ("cap_click_train", "Click Train: points appear from the first batches.",
     "点“训练”：从最初的几个批次起就会出现数据点。"),
    ("cap_train_loss", "training loss {value} at epoch {epoch}", "第 {epoch} 轮的训练损失 {value}"),
    ("cap_val_loss", " · validation loss {value}", " · 验证损失 {value}"),
    ("cap_smoothing",
     ". The training loss is measured with label smoothing {smoothing}: the targets are "
     "never 100% sure, so it cannot fall near 0 and sits above the validation loss.",
     "。训练损失是在标签平滑 {smoothing} 下测的：目标从不是 100% 确定，所以它降不到接近 0，而且高于验证损失。"),
    ("cap_val_all", "all {images} validation images", "全部 {images} 张验证图像"),
    ("cap_val_some", "{images} validation images", "{images} 张验证图像"),
    ("cap_val_the", "the validation images", "验证图像"),
    ("cap_val", "validation {acc} at epoch {epoch} ({what})", "第 {epoch} 轮验证准确率 {acc}（{what}）"),
    ("cap_first_val", "the first validation point comes after a twelfth of the run",
     "第一个验证点在训练进行到十二分之一时出现"),
    ("cap_overlay_loss", "training loss of each ticked run", "每个勾选的训练的训练损失"),
    ("cap_overlay_acc", "validation accuracy of each ticked run", "每个勾选的训练的验证准确率"),
    ("cap_overlay_tick", "tick runs above to compare their curves", "在上面勾选几次训练，比较它们的曲线"),
    ("js.own", "your {digit}: {probs}", "你写的 {digit}：{probs}"),
    ("js.own_waiting", "waiting for the first validation point", "等待第一个验证点"),
    ("js.own_alt", "your drawing of a {digit}", "你写的数字 {digit}"),
    ("js.probe_alt", "test digit {label}", "测试数字 {label}"),
    ("js.probe_true", "true {label}", "真实数字 {label}"),
    ("js.probe_read", ", read as {answer}", "，认成 {answer}"),
    ("js.line_training", "training (smoothed)", "训练（平滑后）"),
    ("js.line_validation", "validation", "验证"),
    ("js.line_train_since", "training (since the previous point)", "训练（自上一个点以来）"),
    ("js.line_run_training", "{name} · training", "{name} · 训练"),
    ("js.line_run_validation", "{name} · validation", "{name} · 验证"),
    ("js.tip_epoch", "epoch {x}: {y}", "第 {x} 轮：{y}"),
    ("js.tip_second", "second {x}: {y}", "第 {x} 秒：{y}"),
    ("js.loss_aria", "loss curves", "损失曲线"),
    ("js.acc_aria", "accuracy curves", "准确率曲线"),
    # radio choices (words.js: Gradio shows a choice's label as given; recipes.py, TrainConfig, ui/fool.py)
    ("js.choice.SGD + momentum", "SGD + momentum", "SGD + 动量"),
    ("js.choice.constant", "constant", "恒定"),
    ("js.choice.StepLR (the seed article's)", "StepLR (the seed article's)", "StepLR（原文用的）"),
    ("js.choice.one-cycle", "one-cycle", "one-cycle（单周期）"),
    ("js.choice.easiest", "easiest", "最容易的"),
    ("no_mnist_test", "No MNIST test set here: {error}", "这里没有 MNIST 测试集：{error}"),
    ("js.seed_measured", "seed article's recipe · {name} (SGD 0.01, batch 64, StepLR; measured {date})",
     "原文的配方 · {name}（SGD 0.01，批量 64，StepLR；{date} 测得）"),
    ("js.seed_vs", "seed article's recipe · {name} (test accuracy, first epoch, vs_seed {date})",
     "原文的配方 · {name}（测试准确率，第一轮，vs_seed {date}）"),
    # ---- the Draw tab's answers (ui/draw.py) ----
    ("no_drawing", "Draw a digit (or upload a photo) first.", "先写一个数字（或上传一张照片）。"),
    ("add_no_drawing", "Draw a digit (or upload a photo) first. Then say which digit it was and add it.",
     "先写一个数字（或上传一张照片），再选出它其实是哪个数字并加入。"),
    ("explain_head",
     "**{name} reads a {digit}** ({prob}), explained in {ms} ms.\n\n**Left, saliency**: your drawing "
     "(grey) with the pixels that made it a {digit} in red and those that spoke against it in blue "
     "(integrated gradients from a blank canvas; they add up to the {digit}'s score).\n\n",
     "**{name} 认成 {digit}**（{prob}），解释用时 {ms} 毫秒。\n\n**左图，显著图**：你的手写（灰色）上，让它成为 "
     "{digit} 的像素标成红色，反对的标成蓝色（从空白画布出发的积分梯度；它们加起来等于 {digit} 的得分）。\n\n"),
    ("explain_conv",
     "**Middle**: the {maps}: bright where a filter found its pattern in your strokes. **Right**: the "
     "{count} learned 5x5 conv1 filters themselves (red +, blue -), one per map, in the same order.",
     "**中图**：{maps}：卷积核在你的笔画里找到它的图案的地方就亮。**右图**：学到的 "
     "{count} 个 5x5 conv1 卷积核本身（红 +，蓝 -），每张特征图一个，顺序相同。"),
    ("explain_fc",
     "**Middle**: the {maps}, strongest first: the strokes each unit looks for. "
     "The MLP has no convolution filters, so there is no right-hand picture.",
     "**中图**：{maps}，最强的在前：每个单元寻找的笔画。MLP 没有卷积核，所以没有右图。"),
    ("maps_conv", "conv1 feature maps ({channels} channels, after BatchNorm and ReLU)",
     "conv1 特征图（{channels} 个通道，经过 BatchNorm 和 ReLU）"),
    ("maps_fc", "weights of the {units} fc1 units this drawing activates most (red +, blue -)",
     "这次手写最能激活的 {units} 个 fc1 单元的权重（红 +，蓝 -）"),
    ("maps_label_conv", "First layer: conv1 feature maps", "第一层：conv1 特征图"),
    ("maps_label_fc", "First layer: fc1 weight patterns", "第一层：fc1 权重图案"),
    ("my_digits_line", "**My digits**: {summary}", "**我的数字**：{summary}"),
    ("my_digits_latest", " (showing the latest {shown})", "（显示最新的 {shown} 个）"),
    ("my_digits_need", " · fine-tuning needs at least {need}", " · 微调至少需要 {need} 个"),
    ("digits_none", "no digits yet", "还没有数字"),
    ("digits_one", "1 digit: {parts}", "1 个数字：{parts}"),
    ("digits_many", "{count} digits: {parts}", "{count} 个数字：{parts}"),
    ("a_digit", "a {label}", "数字 {label}"),
    ("kept_refused", "Some of what your browser kept could not be loaded: {reasons}",
     "浏览器保存的部分内容无法载入：{reasons}"),
    ("digits_over",
     "With this file you would have {count} digits; this app keeps at "
     "most {limit}. Clear yours first, or load a smaller file.",
     "载入这个文件后你会有 {count} 个数字；这个应用最多保存 {limit} 个。先清除你的数字，或载入一个小一些的文件。"),
    ("digits_loaded_one", "Loaded 1 digit from {file}.", "已从 {file} 载入 1 个数字。"),
    ("digits_loaded", "Loaded {count} digits from {file}.", "已从 {file} 载入 {count} 个数字。"),
    # ---- the Train tab (ui/train.py) and the Compare tab's cells (ui/compare.py) ----
    ("col_number", "#", "#"),
    ("col_model", "model", "模型"),
    ("col_settings", "settings", "设置"),
    ("col_state", "state", "状态"),
    ("col_test", "test", "测试"),
    ("col_time", "time", "用时"),
    ("set_upload", "loaded from a file", "从文件载入"),
    ("set_finetune", "fine-tune: {rounds}x{steps} steps, lr {lr}", "微调：{rounds}x{steps} 步，lr {lr}"),
    ("set_main", "{epochs} ep · {optimizer} lr {lr} · {schedule} · batch {batch}",
     "{epochs} 轮 · {optimizer} lr {lr} · {schedule} · 批量 {batch}"),
    ("set_dropout", " · dropout {dropout}", " · dropout 比例 {dropout}"),
    ("set_augmented", " · augmented", " · 数据增强"),
    ("epochs_hint", "at most {limit} here (DIGITNET_MAX_EPOCHS)", "这里最多 {limit} 轮（DIGITNET_MAX_EPOCHS）"),
    ("cmp_model", "Model", "模型"),
    ("cmp_parameters", "Parameters", "参数量"),
    ("cmp_test", "Test accuracy", "测试准确率"),
    ("cmp_drawn", "Drawn-digit accuracy", "手写数字准确率"),
    ("cmp_latency", "Latency (median, ms)", "延迟（中位数，毫秒）"),
    ("cmp_step", "Training step (median, ms, batch {batch})", "训练步（中位数，毫秒，批量 {batch}）"),
    ("cmp_unavailable", "unavailable", "不可用"),
    ("cmp_unknown", "unknown", "未知"),
    ("cmp_not_measured", "not measured", "未测量"),
    ("cmp_finetuned", " (fine-tuned on {digits} digits)", "（用 {digits} 个数字微调过）"),
    ("cmp_stale", " (measured on earlier weights)", "（在较早的权重上测得）"),
    ("kept_too_large", "what your browser kept is too large or not text: ignored", "浏览器保存的内容太大或不是文本：已忽略"),
    ("kept_not_json", "what your browser kept is not JSON: ignored", "浏览器保存的内容不是 JSON：已忽略"),
    ("kept_not_object", "what your browser kept is not an object: ignored", "浏览器保存的内容不是一个对象：已忽略"),
    ("kept_not_model", "{name!r}: not a digitnet model", "{name!r}：不是 digitnet 的模型"),
    ("kept_my_digits", "my digits", "我的数字"),
    ("kept_not_string", "not a string", "不是字符串"),
    ("kept_too_big", "{mb} MB, more than {limit} MB", "{mb} MB，超过了 {limit} MB"),
    ("kept_not_base64", "not base64 ({error})", "不是 base64（{error}）"),
    # The confusion matrix's picture has numbers only (no CJK font on a Space): its meaning is this caption.
    ("confusion_caption",
     "Rows: the true digit · columns: the model's answer · each cell: how many test digits; "
     "the diagonal is read right, every other cell is a mistake (darker: more, on a log scale).",
     "行：真实数字 · 列：模型的答案 · 每一格：测试数字的个数；对角线上是认对的，其余每一格都是认错的"
     "（颜色越深，个数越多，按对数刻度）。"),
]
