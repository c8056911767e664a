"""Data: MNIST loading, the split, normalisation, augmentation, clear errors."""


import numpy as np
import pytest
import torch

from digitnet import data as mdata



def synthetic(n_train=100, n_test=20):
    """Images that encode their own index, so overlaps can be detected."""
    imgs = torch.zeros(n_train, 28, 28, dtype=torch.uint8)
    imgs[:, 0, 0] = torch.arange(n_train) % 256
    imgs[:, 0, 1] = torch.arange(n_train) // 256
    return mdata.MNISTTensors(imgs, torch.arange(n_train) % 10,
                              torch.zeros(n_test, 28, 28, dtype=torch.uint8), torch.arange(n_test) % 10)


def ids(split):
    return set((split.images[:, 0, 0].long() + 256 * split.images[:, 0, 1].long()).tolist())


def test_load_mnist_whole_dataset_as_uint8_tensors():
    d = mdata.load_mnist()
    assert d.train_images.shape == (60_000, 28, 28) and d.train_images.dtype == torch.uint8
    assert d.test_images.shape == (10_000, 28, 28)
    assert d.train_labels.dtype == torch.int64 and set(d.train_labels.unique().tolist()) == set(range(10))
    train, val = mdata.train_val_split(d)
    assert (len(train), len(val)) == (55_000, 5_000)
    x = mdata.normalize(d.train_images[:20_000])
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02  # MNIST_MEAN/STD are right
    assert len(mdata.test_split(d)) == 10_000


def test_split_sizes_no_overlap_and_stable_under_a_seed():
    d = synthetic(1000)
    train, val = mdata.train_val_split(d, val_size=100, seed=3)
    assert (len(train), len(val)) == (900, 100)
    assert not ids(train) & ids(val) and len(ids(train) | ids(val)) == 1000
    train2, val2 = mdata.train_val_split(d, val_size=100, seed=3)
    assert torch.equal(val.images, val2.images) and torch.equal(train.labels, train2.labels)
    _, val3 = mdata.train_val_split(d, val_size=100, seed=4)
    assert ids(val3) != ids(val)
    small, val4 = mdata.train_val_split(d, val_size=100, seed=3, limit=50)
    assert len(small) == 50 and ids(val4) == ids(val)  # a limit shrinks train only


def test_batches_cover_the_split_once_with_labels_kept():
    d = synthetic(300)
    train, _ = mdata.train_val_split(d, val_size=0)
    seen = []
    for x, y in mdata.iterate_batches(train, 64, generator=torch.Generator().manual_seed(0), augment_batches=True):
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and len(x) == len(y)
        seen.append(y)
    assert torch.cat(seen).sort().values.tolist() == train.labels.sort().values.tolist()


def digit_like():
    img = torch.zeros(1, 1, 28, 28)
    img[0, 0, 6:22, 5:8] = 1.0  # a vertical bar on the left
    img[0, 0, 6:9, 5:16] = 1.0  # and a top bar going right: asymmetric, like a "7" mirrored
    return img


def test_augmentation_keeps_shape_and_is_small_and_never_flips():
    x = digit_like().repeat(64, 1, 1, 1)
    out = mdata.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert not torch.allclose(out, x)  # it does something
    cols = torch.arange(28.0)

    def centre_x(imgs):
        mass = imgs[:, 0].clamp(min=0).sum(1)  # (B, 28) ink per column
        return (mass * cols).sum(1) / mass.sum(1)

    assert centre_x(x.flip(-1))[0] > 18 and centre_x(x)[0] < 9
    assert (centre_x(out) < 13).all()  # the ink stays on the left: no sample was mirrored
    ink_rows = out[:, 0].sum(2).argmax(1)
    assert (ink_rows - 7).abs().max() <= 5  # shifts are a few pixels, not a scramble


def test_augmentation_with_zero_ranges_is_identity():
    cfg = mdata.AugmentConfig(max_rotation=0, max_shift=0, min_scale=1, max_scale=1, max_shear=0)
    x = mdata.normalize((digit_like() * 255).to(torch.uint8))
    assert torch.allclose(mdata.augment(x, cfg=cfg), x, atol=1e-4)


def test_missing_mnist_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_DOWNLOAD", "0")
    with pytest.raises(mdata.DataNotFoundError, match="DIGITNET_DATA") as err:
        mdata.load_mnist(tmp_path / "nowhere")
    assert "nowhere" in str(err.value)


def test_truncated_mnist_file_is_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mdata._FILES.values():
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") * 3 + b"\x00" * 50)
    with pytest.raises(mdata.DataNotFoundError, match="truncated"):
        mdata.load_mnist(tmp_path)


def test_random_test_digit_is_what_the_models_see():
    d = mdata.load_mnist()
    image, label, index = mdata.random_test_digit(np.random.default_rng(3))
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() == 1.0  # white ink on black
    assert image[0, 0] == 0.0  # the border is background
    assert 0 <= index < 10_000 and label == int(d.test_labels[index])
    assert np.array_equal(image, d.test_images[index].numpy() / np.float32(255.0))
    # the same as normalize() feeds the models, before the mean/std step
    assert torch.allclose(mdata.normalize(torch.from_numpy(image * 255).round().to(torch.uint8)[None]),
                          mdata.normalize(d.test_images[index][None]))


def test_random_test_digit_is_repeatable_with_a_seed_and_varies_without():
    first = mdata.random_test_digit(np.random.default_rng(7))
    again = mdata.random_test_digit(np.random.default_rng(7))
    assert first[1:] == again[1:] and np.array_equal(first[0], again[0])
    rng = np.random.default_rng(0)
    indices = {mdata.random_test_digit(rng)[2] for _ in range(20)}
    assert len(indices) > 15  # 20 draws from 10,000 images
    assert len({mdata.random_test_digit()[2] for _ in range(5)}) > 1  # no rng: fresh entropy each call
