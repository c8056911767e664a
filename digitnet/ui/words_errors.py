"""What the library refuses, in Simplified Chinese: one template per ``errors.Refusal`` reason.

The library raises ``SomeError.because(reason, english_template, **fields)`` (``digitnet/errors.py``); its
``str()`` is the English sentence, which the page shows as it is in English (no second English table).
Here each reason has its Chinese template, filled in with the same fields and the same format specs, so
numbers read the same in both languages. ``word(exc)`` picks the current request's language
(``words.current``). A field that is itself a Refusal (a my-digits file's bad entry) is worded too, and a
setting's ``label`` is the Train form's name for it (``words.setting_label``).

tests/test_errors.py checks that every reason raised in ``digitnet/`` has a template here, and that the
fields each template names are the ones its raise sites supply.
"""

from __future__ import annotations

from ..errors import Refusal
from . import words

ZH: dict[str, str] = {
    # ---- a setting's value (config.py, recipes.py: the Train form and /train) ----
    "setting.unknown_choice": "{label}没有 {value!r} 这个选项：请从 {choices} 中选一个",
    "setting.not_bool": "{label}必须是 true 或 false，收到的是 {value!r}",
    "setting.not_text": "{label}必须是文本，收到的是 {value!r}",
    "setting.not_whole": "{label}必须是整数，收到的是 {value!r}",
    "setting.not_finite": "{label}必须是有限的数，收到的是 {value!r}",
    "setting.not_above": "{label}必须大于 {lo}，收到的是 {value!r}",
    "setting.too_small": "{label}至少为 {lo}，收到的是 {value!r}",
    "setting.not_below": "{label}必须小于 {hi}，收到的是 {value!r}",
    "setting.too_large": "{label}最多为 {hi}，收到的是 {value!r}",
    # ---- a photo, an upload, the pad's drawing (images.py) ----
    "image.not_uploaded": "只能读取随这次请求上传的文件：请发送图像本身（gradio_client：handle_file(...)）或一幅手写，"
                          "而不是路径",
    "image.long_string": "这不是图像：一个 {length:,} 个字符的字符串，既不是文件路径，也不是画板上的手写（{prefix}...）",
    "image.missing": "图像文件 {path} 不存在",
    "image.bomb": "{name} 太大了：最多 {limit} 百万像素",
    "image.not_image": "{name} 不是可以读取的图像文件：请用 PNG、JPEG 或 WebP",
    "image.undecodable": "{name} 不是可以读取的图像文件（{error}）",
    "image.too_big": "{name} 有 {width}x{height} 像素：最多 {limit} 百万像素，请先缩小",
    "image.dtype": "无法从 dtype 为 {dtype} 的数组读取图像",
    "image.object": "无法从 {kind} 读取图像：{error}",
    "image.shape": "无法从形状为 {shape} 的数组读取图像",
    "image.dict": "无法从键为 {keys} 的字典读取图像",
    "image.bytes": "无法从原始字节读取图像；请传入路径、数组或 PIL 图像",
    "image.not_2d": "pad_payload 需要二维的墨迹数组，而不是形状 {shape}",
    "pad.not_text": "画板发送的是字符串，而不是 {kind}",
    "pad.too_long": "这幅手写有 {length:,} 个字符；画板上的手写最多 {limit:,} 个字符",
    "pad.not_payload": "这不是画板上的手写：画板发送 PNG data URL（{prefix}...）或 \"\"",
    "pad.not_base64": "这幅手写不是有效的 base64（{error}）",
    "pad.not_png": "这幅手写不是 PNG 图像",
    "pad.size": "这幅手写有 {width}x{height} 像素；画板发送的是 {side}x{side}",
    "pad.no_alpha": "这幅手写没有 alpha 通道（PNG 模式 {mode}）；画板的墨迹就在 alpha 通道里",
    "pad.undecodable": "这幅手写的 PNG 无法解码（{kind}：{error}）",
    # ---- a checkpoint file (checkpoint.py, calibrate.py, detector.py: a visitor's upload among them) ----
    "checkpoint.unpacks_too_large": "{name} 解压后有 {mb:.1f} MB；digitnet 的检查点解压后最多 {limit} MB"
                                    "（最大的模型权重也只有 1.1 MB）",
    "checkpoint.missing": "检查点 {name} 不存在",
    "checkpoint.unreadable": "无法读取检查点 {name}（文件被截断、已损坏，或不是安全的 digitnet 检查点）：{error}",
    "checkpoint.not_ours": "{name} 不是 digitnet 检查点（没有 'arch'/'state_dict'）",
    "checkpoint.format_version": "检查点 {name} 的 format_version 是 {found}，应为 {expected}",
    "checkpoint.unknown_model": "检查点 {name} 属于未知模型 {found}（应为 {models} 之一）",
    "checkpoint.state_dict": "检查点 {name} 的 'state_dict' 是 {kind}，而不是张量字典",
    "checkpoint.bad_number": "检查点 {name} 的 {key!r} 无效（应为 {lo:g} 到 {hi:g} 之间的数）：{found}",
    "checkpoint.does_not_fit": "检查点 {name} 与 {arch} 模型不匹配：{error}",
    "checkpoint.not_finite": "检查点 {name} 的权重不是有限的数（{key} 中有 NaN 或 inf）",
    "checkpoint.no_tensor": "检查点 {name} 与 {arch} 模型不匹配：没有 {key!r}",
    "checkpoint.not_tensor": "检查点 {name} 与 {arch} 模型不匹配：{key!r} 不是张量",
    "checkpoint.shape": "检查点 {name} 与 {arch} 模型不匹配：{key!r} 的形状是 {shape}（{dtype}），应为 {expected}"
                        "（{expected_dtype}）",
    "checkpoint.changed": "{name}：校准期间 state_dict 发生了变化（{key}）；没有写入",
    "detector.not_ours": "{name} 不是 digitnet 的检测器文件",
    "detector.does_not_fit": "{name}：其中的权重与检测器不匹配",
    "detector.not_finite": "{name} 的权重不是有限的数",
    # ---- Fool it (fool.py) ----
    "fool.bad_target": "目标必须是 0 到 9 的数字，或者留空让它找最容易的；收到的是 {target!r}。",
    "fool.reads_it_already": "模型已经认成 {digit} 了：请选另一个目标数字。",
    # ---- my digits (finetune.py: adding a digit, a my-digits file, fine-tuning) ----
    "digits.label": "标签必须是 0 到 9 的数字，收到的是 {label!r}",
    "digits.image_shape": "一个数字必须是 28x28 的图像（预处理后的手写），收到的形状是 {shape}",
    "digits.image_dtype": "数字图像必须由数值组成，收到的 dtype 是 {dtype}",
    "digits.image_values": "数字图像的值必须在 0 到 1 之间（黑底白字）",
    "digits.full": "你已经有 {count} 个数字，这是本应用最多保留的数量（{limit}）",
    "digits.too_many_to_save": "{count} 个数字超过了一个文件最多能存的 {limit} 个",
    "digits.claims_too_much": "{name} 不是“我的数字”文件：其中的 {array!r} 声称有 {count}个条目（{mb:,.0f} MB），"
                              "而文件里并没有这些数据（最多保留 {limit} 个数字）",
    "digits.missing": "{name}：没有这个文件",
    "digits.not_npz": "{name} 不是“我的数字”文件（应为本应用让你下载的 .npz 文件）",
    "digits.too_large": "{name} 太大，不可能是“我的数字”文件（解压后 {mb:.0f} MB；最多保留 {limit} 个数字）",
    "digits.no_arrays": "{name} 不是“我的数字”文件：里面没有 'images' 和 'labels' 数组（什么也没有）",
    "digits.other_arrays": "{name} 不是“我的数字”文件：里面没有 'images' 和 'labels' 数组（只有：{found}）",
    "digits.format": "{name} 的格式是 {found!r}，应为 {expected!r}",
    "digits.unreadable": "无法把 {name} 作为“我的数字”文件读取：{error}",
    "digits.images_shape": "{name}：images 的形状必须是 (N, 28, 28)，收到的是 {shape}",
    "digits.labels_shape": "{name}：应有 {count} 个标签，每张图像一个，收到的形状是 {shape}",
    "digits.file_too_many": "{name} 里有 {count} 个数字，超过了本应用最多保留的 {limit} 个",
    "digits.labels": "{name}：标签必须是 0 到 9 的整数，发现了 {found}",
    "digits.in_file": "{name}：{error}",
    "digits.none": "还没有可以学习的数字：先纠正几次识别结果",
    # ---- a visitor's runs (workspace.py: the weights to draw with, a stale choice) ----
    "run.missing": "你没有第 {number} 次训练",
    "run.no_weights": "第 {run} 次训练没有可用的 {model} 权重",
}

WORDS = {"zh-CN": ZH}  # English: the exception's own sentence


def word(exc: Refusal) -> str:
    """``exc`` in the current request's language: its own sentence in English (or where a reason has no
    template), else the template of its reason with its fields."""
    template = WORDS.get(words.current(), {}).get(exc.reason or "")
    if template is None:
        return str(exc)
    fields = {k: word(v) if isinstance(v, Refusal) else v for k, v in exc.fields.items()}
    if "setting" in fields and "label" in fields:
        fields["label"] = words.setting_label(fields["setting"], fields["label"], words.current())
    return template.format(**fields)
