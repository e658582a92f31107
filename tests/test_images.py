"""Tests for vislab.images: the sample photos, tensor <-> PIL conversions, resizing."""

import numpy as np
import pytest
import torch
from PIL import Image

from vislab.images import PHOTOS, load_photo, resize_tensor, sample_photos, to_pil, to_tensor


def test_sample_photos():
    photos = sample_photos()
    assert set(photos) == set(PHOTOS) == {"china", "flower"}
    for img in photos.values():
        assert isinstance(img, Image.Image)
        assert img.mode == "RGB" and img.size == (640, 427)


def test_load_photo_sizes():
    assert load_photo("china", size=64).size == (64, 64)
    assert load_photo("flower", size=(48, 32)).size == (48, 32)          # PIL order: (width, height)
    assert to_tensor(load_photo("flower", size=(48, 32))).shape == (3, 32, 48)
    # the two photos are different pictures
    a, b = to_tensor(load_photo("china", 32)), to_tensor(load_photo("flower", 32))
    assert (a - b).abs().mean() > 0.05


def test_load_photo_bad_input():
    with pytest.raises(ValueError, match="unknown photo"):
        load_photo("cat")
    for bad in (0, -5, (32,), (32, 0), "32", (32.0, 32)):
        with pytest.raises(ValueError, match="size must be"):
            load_photo("china", size=bad)


def test_to_tensor_and_back_is_exact():
    img = load_photo("china", size=(40, 24))
    t = to_tensor(img)
    assert t.shape == (3, 24, 40) and t.dtype == torch.float32
    assert 0 <= t.min() and t.max() <= 1
    back = to_pil(t)
    assert back.size == img.size and back.mode == "RGB"
    assert np.array_equal(np.asarray(back), np.asarray(img))


def test_to_tensor_converts_other_modes_to_rgb():
    grey = Image.new("L", (5, 4), color=128)
    t = to_tensor(grey)
    assert t.shape == (3, 4, 5)
    assert torch.allclose(t, torch.full_like(t, 128 / 255))
    rgba = Image.new("RGBA", (3, 2), color=(255, 0, 0, 10))
    assert torch.equal(to_tensor(rgba)[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_to_pil_shapes_and_clipping():
    x = torch.tensor([[[-1.0, 0.5], [2.0, 1.0]]]).expand(3, 2, 2)        # (3, 2, 2)
    img = to_pil(x)
    assert img.size == (2, 2)
    assert img.getpixel((0, 0)) == (0, 0, 0)               # clipped below
    assert img.getpixel((0, 1)) == (255, 255, 255)         # clipped above
    assert img.getpixel((1, 0)) == (128, 128, 128)         # 0.5 * 255 rounded
    assert to_pil(x[None]).size == (2, 2)                  # (1, 3, H, W)
    grey = to_pil(torch.zeros(1, 3, 4))
    assert grey.mode == "L" and grey.size == (4, 3)
    # gradients and other dtypes are handled
    assert to_pil(torch.rand(3, 4, 4, dtype=torch.float64, requires_grad=True)).size == (4, 4)


def test_to_pil_and_to_tensor_bad_input():
    with pytest.raises(TypeError, match="PIL"):
        to_tensor(torch.rand(3, 4, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        to_pil(load_photo("china", 8))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_pil(torch.rand(4, 8, 8))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_pil(torch.rand(2, 3, 8, 8))


def test_resize_tensor():
    x = torch.rand(2, 3, 32, 48)
    assert resize_tensor(x, 16).shape == (2, 3, 16, 16)
    assert resize_tensor(x, (8, 12)).shape == (2, 3, 8, 12)
    assert resize_tensor(x[0], (8, 12)).shape == (3, 8, 12)               # single image stays single
    assert resize_tensor(x, (32, 48)).sub(x).abs().max() < 1e-5            # same size: unchanged
    # antialiased downsampling of a constant image is the constant
    c = torch.full((1, 3, 30, 30), 0.25)
    assert torch.allclose(resize_tensor(c, 7), torch.full((1, 3, 7, 7), 0.25), atol=1e-6)
    big = resize_tensor(torch.rand(1, 3, 8, 8), 32, mode="bicubic")
    assert big.min() >= 0 and big.max() <= 1                                  # bicubic overshoot clamped
    near = resize_tensor(torch.arange(4.0).reshape(1, 1, 2, 2), 4, mode="nearest")
    assert torch.equal(near[0, 0, :2, :2], torch.zeros(2, 2))
    assert resize_tensor(x.double(), 8).dtype == torch.float32


def test_resize_tensor_bad_input():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        resize_tensor(torch.rand(32, 32), 8)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        resize_tensor([[0.0]], 8)
    with pytest.raises((ValueError, TypeError)):
        resize_tensor(torch.rand(1, 3, 8, 8), 0)
