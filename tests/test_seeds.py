"""benchmarks/seeds.py: a recipe over several seeds, as one report (mean +- std, validation and test)."""

import json

import pytest

from benchmarks import seeds


def test_seed_lists_and_ranges():
    assert seeds.parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert seeds.parse_seeds("4") == [4]


def test_a_tiny_run_reports_each_seed_and_merges_with_another(tmp_path, mnist):
    small = ["--set", "train_limit=600", "--set", "val_size=200", "--set", "test_limit=200", "--set", "epochs=1"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert seeds.main(["--model", "mlp", "--seeds", "0", "--json", str(a), *small]) == 0
    assert seeds.main(["--model", "mlp", "--seeds", "1", "--json", str(b), *small]) == 0
    one = json.loads(a.read_text())
    assert one["record"]["command"].startswith("python") and one["runs"][0]["seed"] == 0
    assert one["config"]["train_limit"] == 600 and one["target"] == 0.98
    merged_path = tmp_path / "ab.json"
    assert seeds.main(["--merge", str(b), str(a), "--json", str(merged_path)]) == 0
    merged = json.loads(merged_path.read_text())
    runs = merged["runs"]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["record"]["date"] for r in runs)
    tests = [r["test_acc"] for r in runs]
    assert merged["test_mean"] == pytest.approx(sum(tests) / 2) and merged["test_min"] == min(tests)
    assert merged["test_at_target"] == sum(t >= 0.98 for t in tests)
    with pytest.raises(ValueError, match="twice"):
        seeds.merge([one, one])
    other = dict(one, config=dict(one["config"], epochs=2))
    with pytest.raises(ValueError, match="not the same recipe"):
        seeds.merge([one, other])
    lenet = {"model": "lenet", "freeze": True, "freeze_from": None}
    assert seeds.effective(lenet)["freeze_from"] == pytest.approx(1 / 3)  # thirds, as the runs did them
