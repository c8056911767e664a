"""benchmarks/shipped.py chooses a shipped file on validation only: test never changes the choice."""

import json

from benchmarks import shipped


def run_file(tmp_path, name, val_acc, val_loss, test_acc):
    path = tmp_path / name / "metrics.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"config": {"seed": 3}, "test_acc": test_acc,
                                "history": [{"val_acc": 0.5, "val_loss": 9.0}, {"val_acc": val_acc, "val_loss": val_loss}]}))
    return str(path)


def test_the_recipe_then_the_file_are_chosen_on_validation_never_on_test(tmp_path):
    a = [run_file(tmp_path, f"a{i}", v, 0.02, t) for i, (v, t) in enumerate([(0.9936, 0.9952), (0.9938, 0.9946)])]
    b = [run_file(tmp_path, f"b{i}", v, 0.02, t) for i, (v, t) in enumerate([(0.9934, 0.9990), (0.9936, 0.9990)])]
    groups = [shipped.summarise("A", [shipped.read(f) for f in a]), shipped.summarise("B", [shipped.read(f) for f in b])]
    best, run = shipped.choose(groups)
    assert best["recipe"] == "A" and run["name"] == "a1" and run["test_acc"] == 0.9946  # B's better test is ignored
    # A tie on validation accuracy goes to the lower validation loss.
    c = [run_file(tmp_path, "c0", 0.9936, 0.030, 0.99), run_file(tmp_path, "c1", 0.9936, 0.010, 0.98)]
    best, run = shipped.choose([shipped.summarise("C", [shipped.read(f) for f in c])])
    assert run["name"] == "c1"


def test_the_record_names_the_rule_and_every_file(tmp_path):
    files = [run_file(tmp_path, f"s{i}", 0.993 + i / 10_000, 0.02, 0.995) for i in range(3)]
    out = tmp_path / "shipped.json"
    shipped.main(["--model", "cnnnet", "--group", "S", *files, "--json", str(out)])
    rec = json.loads(out.read_text())
    assert rec["record"]["commit"] and rec["rule"] == shipped.RULE
    assert [r["file"] for r in rec["groups"][0]["runs"]] == files and rec["chosen"]["name"] == "s2"
