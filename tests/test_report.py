"""One source for every figure: the README's figures table is what benchmarks/report.py makes of the records."""

import json
import shutil
from pathlib import Path

from benchmarks import report

ROOT = Path(__file__).resolve().parent.parent


def test_readme_figures_agree_with_the_benchmark_records():
    diff = report.check()
    assert not diff, "run python -m benchmarks.report:\n" + "\n".join(diff)
    assert report.main(["--check"]) == 0


def test_a_figure_changed_in_a_record_or_typed_into_the_readme_is_caught(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    assert report.check(readme, results) == []
    drawn = json.loads((results / "drawn.json").read_text())
    drawn["pad_payload"]["lenet"] -= 0.01  # the record moves: the README no longer says what it says
    (results / "drawn.json").write_text(json.dumps(drawn))
    diff = report.check(readme, results)
    assert any(line.startswith("+|") and "1,000 drawn MNIST" in line for line in diff), diff
    readme.write_text(report.splice(readme.read_text(), report.table(results)))
    assert report.check(readme, results) == []
    readme.write_text(readme.read_text().replace("1,000 drawn MNIST", "1,000 drawn MNIST (typed in)"))
    assert report.check(readme, results)  # a hand edit inside the block is caught too


def test_every_record_says_when_where_and_how_it_was_made():
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        rec = json.loads(path.read_text())["record"]
        assert rec["date"][:4].isdigit() and rec["commit"] and rec["command"].startswith("python"), path.name
        assert rec["machine"]["cores"] >= 1 and "cpu_model" in rec["machine"], path.name


def test_the_apps_not_sure_threshold_is_the_one_the_record_chose_on_validation():
    from digitnet.predict import UNSURE_BELOW

    figures = report.load("calibration")
    assert figures["chosen"] == UNSURE_BELOW  # rerun benchmarks.calibration, or set UNSURE_BELOW to its choice
