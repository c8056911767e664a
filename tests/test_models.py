"""Models: shapes, logits, one step lowers the loss, clear errors on unknown names."""

import pytest
import torch
import torch.nn.functional as F

from digitnet.models import MODELS, MaxPool2x2, build_model, count_parameters


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("batch", [1, 5])
def test_output_shape_is_logits_for_ten_classes(name, batch):
    model = build_model(name).eval()
    out = model(torch.randn(batch, 1, 28, 28))
    assert out.shape == (batch, 10)
    # logits, not probabilities: the seed's softmax-then-CrossEntropy bug would give rows summing to 1
    model.train()
    out = model(torch.randn(8, 1, 28, 28) * 3)
    assert not torch.allclose(out.sum(1), torch.ones(8), atol=1e-3)
    assert (out < 0).any()


@pytest.mark.parametrize("name", list(MODELS))
def test_one_optimisation_step_lowers_the_loss_on_a_fixed_batch(name):
    torch.manual_seed(0)
    model = build_model(name)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    before = F.cross_entropy(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = F.cross_entropy(model(x), y)
    assert after.item() < before.item()


def test_architectures_match_the_article():
    # LeNet-5: 6 and 16 channels of 5x5 convs, 120-84-10 (+ BatchNorm affine parameters)
    lenet = build_model("lenet")
    assert [lenet.conv1.out_channels, lenet.conv2.out_channels] == [6, 16]
    assert lenet.conv1.kernel_size == lenet.conv2.kernel_size == (5, 5)
    assert [lenet.fc1.out_features, lenet.fc2.out_features, lenet.fc3.out_features] == [120, 84, 10]
    assert count_parameters(lenet) == 156 + 12 + 2416 + 32 + 48120 + 10164 + 850
    mlp = build_model("mlp")
    assert [mlp.fc1.in_features, mlp.fc1.out_features, mlp.fc2.out_features, mlp.out.out_features] == [784, 300, 100, 10]
    cnn = build_model("cnnnet")
    assert [cnn.conv1.out_channels, cnn.conv2.out_channels, cnn.fc1.in_features] == [16, 30, 480]


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*mlp, cnnnet, lenet"):
        build_model("resnet")
    assert type(build_model(" LeNet ")).__name__ == "LeNet"  # names are forgiving about case/space


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dropout", [0.0, 0.5])
@torch.no_grad()
def test_dropout_is_active_only_in_training(name, dropout):
    torch.manual_seed(0)
    model = build_model(name, dropout=dropout)
    x = torch.randn(8, 1, 28, 28)
    model.train()
    first, second = model(x), model(x)
    if dropout:  # a fresh mask per call: the two answers differ
        assert (first - second).abs().max().item() > 1e-3
    else:  # nothing random left (BatchNorm uses the batch's statistics either way)
        assert torch.equal(first, second)
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("shape", [(16, 6, 28, 28), (16, 16, 10, 10), (16, 30, 8, 8)])
def test_the_fast_max_pool_gives_pytorchs_values_and_gradients(shape):
    torch.manual_seed(0)
    # ReLU'd values, with many exact ties at zero: the gradient must go to one of them, as in PyTorch.
    x = torch.randn(*shape).relu()
    x[0] = 0.0  # a blank image: every window a four-way tie
    grad_out = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    results = []
    for pool in (MaxPool2x2(), torch.nn.MaxPool2d(2, 2)):
        xi = x.clone().requires_grad_(True)
        out = pool(xi)
        out.backward(grad_out)
        results.append((out.detach(), xi.grad))
        with torch.no_grad():  # the inference path
            assert torch.equal(pool(x), out.detach())
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    assert (results[0][1] != 0).sum() == grad_out.numel()  # one input per window gets its gradient


@pytest.mark.parametrize("name", ["cnnnet", "lenet"])
def test_the_models_give_the_seed_orders_numbers(name):
    """pool(relu(bn(conv))) as the seed writes it, and relu(pool(...)) as the models compute it."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.randn(8, 1, 28, 28)
    h = x
    for conv, bn in ((model.conv1, model.bn1), (model.conv2, model.bn2)):
        h = torch.nn.functional.max_pool2d(torch.relu(bn(conv(h))), 2)
    h = torch.flatten(h, 1)
    if name == "lenet":
        expected = model.fc3(torch.relu(model.fc2(torch.relu(model.fc1(h)))))
    else:
        expected = model.fc2(torch.relu(model.fc1(h)))
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_folded_net_for_evaluation_gives_the_models_answers_and_leaves_it_alone(name):
    # What every validation and test pass runs: the registry's page layers with BatchNorm folded in, the
    # convolutional models in oneDNN's blocked layout. Walking the layers wrongly (a missed pool or ReLU,
    # a flatten in the wrong order, a BatchNorm left out) would change the answers.
    from digitnet import data as mdata
    from digitnet.models import REGISTRY, FoldedNet, folded

    torch.manual_seed(0)
    model = build_model(name)
    for bn in model.modules():  # BatchNorm statistics far from the identity, as after training
        if isinstance(bn, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.normal_()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = mdata.normalize(torch.randint(0, 256, (300, 28, 28), dtype=torch.uint8))
    net = folded(model)
    assert isinstance(net, FoldedNet) and not model.training  # evaluation mode, as evaluate() always set
    convolutional = any(kind == "conv" for _, kind, *_ in REGISTRY[name].page_layers)
    assert net.blocked == (convolutional and torch.backends.mkldnn.is_available())
    with torch.inference_mode():
        out, expected = net(x), model(x)
    assert not out.is_mkldnn and out.shape == (300, 10)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(out.argmax(1), expected.argmax(1))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the model is untouched


def test_evaluation_gives_the_models_own_logits_in_order_over_uneven_batches():
    from digitnet import data as mdata
    from digitnet.evaluation import evaluate, logits_of

    torch.manual_seed(0)
    model = build_model("lenet").eval()
    split = mdata.Split(torch.randint(0, 256, (1237, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (1237,)))
    batched = logits_of(model, split, batch_size=100)  # 12 batches of 100 and one of 37
    with torch.no_grad():
        one_pass = model(mdata.normalize(split.images))
    assert batched.shape == (1237, 10) and torch.allclose(batched, one_pass, atol=1e-4)
    loss, acc, probs = evaluate(model, split, torch.device("cpu"), batch_size=100)
    assert acc == pytest.approx((one_pass.argmax(1) == split.labels).float().mean().item())
    assert loss == pytest.approx(F.cross_entropy(one_pass, split.labels).item(), rel=1e-4)
    assert torch.allclose(probs, one_pass.softmax(1), atol=1e-5)
