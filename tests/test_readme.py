"""The README's Python API example runs as written against the launched app."""

import re
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its API example"
    return match.group(1)


def test_readme_api_example_works(served_app, tmp_path, monkeypatch, capsys):
    code = readme_example().replace("http://127.0.0.1:7860/", served_app.url)
    assert code != readme_example()  # the example talks to the documented default address
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("Loaded as API")]
    assert lines[0] == "1"  # the drawn "1" is read as a 1
    confidences = eval(lines[1])
    assert set(confidences) == {str(d) for d in range(10)}
    assert max(confidences, key=confidences.get) == "1"
    assert lines[2] == "idle"  # the example trains nothing on anyone's Space


def test_readme_documents_every_environment_variable_the_code_reads():
    import subprocess

    code = subprocess.run(["git", "grep", "-hoE", "DIGITNET_[A-Z_]+", "--", "*.py"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.split()
    text = (ROOT / "README.md").read_text()
    missing = sorted({name for name in code if f"`{name}`" not in text})
    assert not missing, f"README.md does not document {missing}"


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 180
