"""Accuracy on digits drawn like a person draws them (benchmarks/drawn.py), on a small sample, in process."""

from __future__ import annotations


import pytest

from benchmarks.drawn import batch_accuracy, in_process, make_drawings, naive_input, pad_input

SAMPLE = 150  # 50 drawings of each style
# The targets are 98.5% (LeNet, CNNNet) and 96% (MLP) on 1,000 drawings; on 150 the
# binomial spread is about 1 point, so the bounds sit 2 points lower.
BOUNDS = {"lenet": 0.965, "cnnnet": 0.965, "mlp": 0.94}


@pytest.fixture(scope="module")
def drawings(mnist):
    # Validation digits: a bound that would keep a file from shipping is a choice, and test chooses nothing
    # (the test version of the benchmark reports: benchmarks/results/drawn.json).
    return make_drawings(SAMPLE, seed=0, split="val")


def test_drawings_are_deterministic_and_varied(drawings):
    again = make_drawings(6, seed=0, split="val")
    assert all((a.canvas == b.canvas).all() and a.label == b.label for a, b in zip(drawings[:6], again))
    assert {d.style for d in drawings} == {"scaled", "thin", "thick"}
    fractions = [d.fraction for d in drawings]
    assert min(fractions) < 0.3 and max(fractions) > 0.65


def test_the_validation_version_draws_validation_digits_not_test_ones(mnist):
    from digitnet.data import train_val_split

    val = train_val_split(mnist)[1]
    drawn = make_drawings(6, seed=0, split="val")
    assert [d.label for d in drawn] == [int(val.labels[d.index]) for d in drawn]
    test = make_drawings(6, seed=0, split="test")
    assert [d.label for d in test] == [int(mnist.test_labels[d.index]) for d in test]
    assert any((a.canvas != b.canvas).any() for a, b in zip(drawn, test))  # other digits, same styles
    assert [d.style for d in drawn] == [d.style for d in test]
    with pytest.raises(ValueError, match="val, test"):
        make_drawings(1, split="train")


def test_drawn_digit_accuracy_meets_the_bounds(drawings, monkeypatch):
    monkeypatch.delenv("DIGITNET_CHECKPOINTS", raising=False)  # the shipped checkpoints
    accuracy, by_style, _ = in_process(drawings, flagged_is_miss=False)  # the models' own reading
    for model, bound in BOUNDS.items():
        assert accuracy[model] >= bound, f"{model}: {100 * accuracy[model]:.1f}% on {SAMPLE} drawings (by style {by_style})"
    naive = batch_accuracy([naive_input(d.canvas) for d in drawings], [d.label for d in drawings])
    for model in BOUNDS:  # what preprocessing buys: the plain resized canvas is misread
        assert naive[model] < accuracy[model] - 0.3


def test_the_not_a_digit_detector_costs_drawn_digits_at_most_two_in_150(drawings, monkeypatch):
    """Counting a digit flagged "not a digit" as misread (what the visitor sees), the pad's drawings lose at
    most 2 of 150 (1,000 validation drawings: 0.6-0.7 points, benchmarks/RESULTS-notdigit.md)."""
    monkeypatch.delenv("DIGITNET_CHECKPOINTS", raising=False)
    own, _, _ = in_process(drawings, pad_input, flagged_is_miss=False)
    seen, _, _ = in_process(drawings, pad_input)
    for model in BOUNDS:
        assert own[model] - 2 / SAMPLE - 1e-9 <= seen[model] <= own[model], model


def test_the_drawing_pads_payload_is_read_as_well_as_the_canvas(drawings, monkeypatch):
    # The pad sends the drawing as a 112x112 alpha PNG (small and fast to send); that must not cost accuracy.
    monkeypatch.delenv("DIGITNET_CHECKPOINTS", raising=False)
    canvas, _, _ = in_process(drawings, flagged_is_miss=False)
    pad, by_style, _ = in_process(drawings, pad_input, flagged_is_miss=False)
    for model, bound in BOUNDS.items():
        assert pad[model] >= bound, f"{model}: {100 * pad[model]:.1f}% through the pad payload (by style {by_style})"
        # 2 drawings of 150 either way: single ambiguous drawings flip (see benchmarks/RESULTS-pad.md)
        assert pad[model] >= canvas[model] - 2 / SAMPLE, model
