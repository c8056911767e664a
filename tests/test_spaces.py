"""Hugging Face Spaces readiness: ``python app.py`` serves under the variables a Space sets, with no MNIST.

A Space runs ``python app.py`` (README front matter: ``app_file``) with ``SYSTEM=spaces``,
``SPACE_ID`` and ``GRADIO_SERVER_NAME=0.0.0.0``; it has the shipped checkpoints and no
MNIST. The app must start, answer /predict from the shipped weights and download nothing
until someone trains. The README's front matter and requirements.txt must match the Gradio
these tests ran with, since the Space installs exactly what they say.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import gradio
import pytest
import yaml
from PIL import Image, ImageDraw

from conftest import CANVAS, free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240  # importing torch + gradio on two busy cores takes tens of seconds
STOP_TIMEOUT_S = 30
FRONT_MATTER_KEYS = ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file",
                     "python_version", "suggested_hardware", "pinned", "license")
SPACE_COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}  # what Spaces accepts

# Digits drawn as a person draws them on the 800x800 canvas: one round-brush stroke each.
STROKES = {
    "1": [(410, 150), (395, 650)],
    "7": [(240, 190), (560, 190), (370, 660)],
}
BRUSH_WIDTH = 48  # canvas pixels, as app.BRUSH_RADIUS * 2


def draw_digit(points: list[tuple[int, int]], path: Path) -> Path:
    """Black ink on a transparent canvas (RGBA, ink in alpha), like the Sketchpad's layer."""
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    pen = ImageDraw.Draw(canvas)
    pen.line(points, fill=(0, 0, 0, 255), width=BRUSH_WIDTH, joint="curve")
    for x, y in (points[0], points[-1]):  # round caps
        r = BRUSH_WIDTH // 2
        pen.ellipse((x - r, y - r, x + r, y + r), fill=(0, 0, 0, 255))
    canvas.save(path)
    return path


def front_matter() -> dict:
    """The YAML block at the top of README.md (what Spaces reads)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md does not start with a --- front matter block"
    return yaml.safe_load(match.group(1))


def wait_until_serving(url: str, proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> None:
    """Poll the app's page until it answers 200; fail with its output if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"python app.py exited with {proc.returncode}:\n{out[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"python app.py did not answer on {url} within {timeout} s")


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    """``python app.py`` under Spaces' variables, without MNIST; yields (url, empty data dir, process)."""
    data = tmp_path_factory.mktemp("no-mnist")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITNET_", "GRADIO_"))}
    env.update(
        SYSTEM="spaces", SPACE_ID="user/digitnet", SPACE_HOST="user-digitnet.hf.space",
        GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT=str(port),
        DIGITNET_DATA=str(data), DIGITNET_DOWNLOAD="0",  # a download attempt would fail loudly, not hang
        GRADIO_ANALYTICS_ENABLED="False",  # this machine has no internet; a Space does
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/", proc)
        yield f"http://127.0.0.1:{port}/", data, proc
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


def test_app_serves_drawings_under_spaces_settings_without_mnist(space, tmp_path):
    from gradio_client import Client, handle_file

    url, data, proc = space
    client = Client(url, verbose=False)
    for digit, points in STROKES.items():
        path = draw_digit(points, tmp_path / f"{digit}.png")
        sketch = {"background": None, "layers": [handle_file(str(path))], "composite": handle_file(str(path))}
        answer = client.predict(sketch=sketch, model="lenet", api_name="/predict")
        assert answer["label"] == digit, answer
    status = client.predict(api_name="/status")
    assert status["state"] == "idle"
    assert proc.poll() is None, "the app stopped while serving"
    assert list(data.iterdir()) == [], "MNIST was fetched although nobody trained"


def test_readme_front_matter_is_what_spaces_needs():
    meta = front_matter()
    missing = [k for k in FRONT_MATTER_KEYS if k not in meta]
    assert not missing, f"README front matter lacks {missing}"
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__, "the Space would run another Gradio than the tests did"
    assert meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).is_file()
    # Quoted in YAML: an unquoted 3.10 would read as the number 3.1.
    assert isinstance(meta["python_version"], str) and re.fullmatch(r"3\.\d+", meta["python_version"])
    assert meta["suggested_hardware"] == "cpu-basic"
    assert isinstance(meta["pinned"], bool)
    assert meta["colorFrom"] in SPACE_COLOURS and meta["colorTo"] in SPACE_COLOURS
    assert meta["title"] and meta["emoji"] and meta["license"]


def test_requirements_pin_the_gradio_the_tests_ran_with():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    gradio_pins = [line for line in lines if re.match(r"gradio\s*([=<>~!]|\[|$)", line)]
    assert gradio_pins == [f"gradio=={gradio.__version__}"], gradio_pins
