"""Tests for vislab.anyres against transformers' LLaVA-NeXT implementation.

transformers orders every size (height, width); vislab orders them (width, height) like PIL
and LLaVA's own code, so each comparison swaps the pairs.
"""

import types

import ipywidgets as W
import numpy as np
import pytest
import torch
from PIL import Image

from vislab.anyres import (
    LLAVA_NEXT_GRIDS, anyres_grid_shape, anyres_num_tokens, anyres_tiles, divide_to_patches,
    grid_resolutions, pad_box, resize_and_pad, resized_size, score_resolutions,
    select_best_resolution, unpad, unpadded_shape,
)

ipu = pytest.importorskip("transformers.image_processing_utils")
llava_next = pytest.importorskip("transformers.models.llava_next.modeling_llava_next")
llava_proc = pytest.importorskip("transformers.models.llava_next.processing_llava_next")
transforms = pytest.importorskip("transformers.image_transforms")


def _swap(pairs):
    return [(b, a) for a, b in pairs]


def _sizes(seed, n=300, hi=3000):
    rng = np.random.default_rng(seed)
    fixed = [(336, 336), (672, 336), (336, 672), (640, 480), (4032, 3024), (1000, 100), (100, 1000),
             (1, 1), (2480, 3508), (1920, 1080)]
    return fixed + [tuple(int(v) for v in rng.integers(1, hi, 2)) for _ in range(n)]


CANDIDATE_LISTS = [
    list(LLAVA_NEXT_GRIDS),
    grid_resolutions(384, 6, 6, max_tiles=9),
    [(336, 672), (1008, 336), (672, 672)],          # asymmetric: the (w, h) order matters
    [(672, 336), (336, 672)],
]


@pytest.mark.parametrize("cands", CANDIDATE_LISTS)
def test_select_best_resolution_matches_transformers(cands):
    for w, h in _sizes(len(cands)):
        ref = ipu.select_best_resolution((h, w), _swap(cands))
        assert select_best_resolution((w, h), cands) == (ref[1], ref[0]), (w, h)


def test_select_best_resolution_rules():
    # effective resolution: a 1000x500 image scaled into 672x336 keeps 672x336 pixels
    scores = {r["resolution"]: r for r in score_resolutions((1000, 500), LLAVA_NEXT_GRIDS)}
    assert scores[(672, 336)]["effective"] == 672 * 336
    # ties on effective go to the least waste: a 300x300 image is captured whole by every
    # canvas (capped at its own area), so the smallest canvas wins
    assert select_best_resolution((300, 300), LLAVA_NEXT_GRIDS) == (336, 672)
    assert select_best_resolution((300, 300), [(672, 672), (336, 336)]) == (336, 336)
    # a full tie keeps the first candidate
    assert select_best_resolution((300, 300), [(336, 672), (672, 336)]) == (336, 672)
    assert select_best_resolution((300, 300), [(672, 336), (336, 672)]) == (672, 336)
    # the notes' version (no cap on upscaling) blows the same small image up to 2x2
    assert select_best_resolution((300, 300), LLAVA_NEXT_GRIDS, cap_upscaling=False) == (672, 672)
    # a wide panorama picks the 3x1 canvas
    assert select_best_resolution((3000, 1000), LLAVA_NEXT_GRIDS) == (1008, 336)


def test_grid_shape_matches_transformers():
    for cands in CANDIDATE_LISTS:
        for w, h in _sizes(7, n=100):
            rows, cols = llava_next.get_anyres_image_grid_shape((h, w), _swap(cands), 336)
            assert anyres_grid_shape((w, h), cands, 336) == (cols, rows)


def test_resize_geometry_matches_transformers():
    proc = pytest.importorskip("transformers.models.llava_next.image_processing_pil_llava_next")
    P = proc.LlavaNextImageProcessorPil()
    for w, h in _sizes(3, n=100):
        target = select_best_resolution((w, h))
        dummy = np.zeros((3, h, w), dtype=np.uint8)
        from transformers.image_utils import ChannelDimension
        ref_h, ref_w = ipu.get_patch_output_size(dummy, (target[1], target[0]), ChannelDimension.FIRST)
        assert resized_size((w, h), target) == (ref_w, ref_h)
        (top, bottom), (left, right) = P._get_padding_size((ref_h, ref_w), (target[1], target[0]))
        assert pad_box((w, h), target) == (left, top, right, bottom)


def test_resize_and_pad_pil_and_tensor():
    img = Image.new("RGB", (500, 250), (255, 255, 255))
    canvas = resize_and_pad(img, (672, 672))
    assert canvas.size == (672, 672)
    a = np.array(canvas)
    left, top, right, bottom = pad_box((500, 250), (672, 672))
    assert (left, right) == (0, 0) and top + bottom == 672 - 336
    assert a[:top].max() == 0 and a[672 - bottom:].max() == 0 and a[top:672 - bottom].min() == 255
    t = torch.ones(3, 250, 500)
    ct = resize_and_pad(t, (672, 672))
    assert ct.shape == (3, 672, 672)
    assert ct[:, :top].abs().max() == 0 and torch.allclose(ct[:, top:672 - bottom], torch.ones(1))
    with pytest.raises(TypeError):
        resize_and_pad(np.zeros((3, 4, 4)), (8, 8))


def test_divide_to_patches_row_major_and_round_trip():
    canvas = torch.arange(3 * 4 * 6, dtype=torch.float32).reshape(3, 4, 6)
    tiles = divide_to_patches(canvas, 2)
    ref = transforms.divide_to_patches(canvas.numpy(), 2)
    assert len(tiles) == len(ref) == 6
    for a, b in zip(tiles, ref):
        np.testing.assert_array_equal(a.numpy(), b)
    rebuilt = torch.cat([torch.cat(tiles[r * 3:(r + 1) * 3], dim=2) for r in range(2)], dim=1)
    assert torch.equal(rebuilt, canvas)
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8))
    ptiles = divide_to_patches(pil, 2)
    np.testing.assert_array_equal(np.array(ptiles[4]), np.array(pil)[2:4, 2:4])
    with pytest.raises(ValueError):
        divide_to_patches(canvas, 4)


def test_anyres_tiles_thumbnail_first():
    img = Image.new("RGB", (1000, 500), (10, 20, 30))
    out = anyres_tiles(img)
    assert len(out) == 1 + 2                     # 672x336 canvas: 2x1 tiles
    assert all(t.size == (336, 336) for t in out)
    t = anyres_tiles(torch.rand(3, 500, 1000))
    assert len(t) == 3 and t[0].shape == (3, 336, 336)


def test_unpad_matches_transformers():
    rng = np.random.default_rng(1)
    for _ in range(200):
        rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        w, h = (int(v) for v in rng.integers(1, 3000, 2))
        feats = torch.randn(2, rows * 24, cols * 24)
        ref = llava_next.unpad_image(feats, (h, w))
        ours = unpad(feats, (w, h))
        assert torch.equal(ours, ref), (w, h, rows, cols)
        assert tuple(ours.shape[1:]) == unpadded_shape((rows * 24, cols * 24), (w, h))


def test_token_count_matches_transformers_processor():
    fake = types.SimpleNamespace(
        image_processor=types.SimpleNamespace(image_grid_pinpoints=[list(p) for p in _swap(LLAVA_NEXT_GRIDS)]),
        patch_size=14, num_additional_image_tokens=0,
    )
    fake._get_unpadded_features = types.MethodType(llava_proc.LlavaNextProcessor._get_unpadded_features, fake)
    for w, h in _sizes(5, n=150):
        ref = llava_proc.LlavaNextProcessor._get_number_of_features(fake, h, w, 336, 336)
        assert anyres_num_tokens((w, h)).total == ref, (w, h)


def test_token_count_examples():
    t = anyres_num_tokens((672, 672))
    assert t.grid == (2, 2) and t.base == 576 and t.tiles == 48 * 48 and t.newline == 48
    assert t.total == 576 + 2304 + 48
    flat = anyres_num_tokens((672, 672), unpad=False, newline=False)
    assert flat.total == 5 * 576                # the "up to 2880 tokens" of the LLaVA-NeXT blog
    wide = anyres_num_tokens((1000, 500))
    assert wide.grid == (2, 1) and wide.feature_hw == (24, 48)
    tall_pad = anyres_num_tokens((600, 300), [(672, 672)])
    assert tall_pad.feature_hw == (24, 48)       # the padded half of a 2x2 grid is dropped


def test_bad_inputs():
    with pytest.raises(TypeError):
        select_best_resolution((100,), LLAVA_NEXT_GRIDS)
    with pytest.raises(ValueError):
        select_best_resolution((0, 100), LLAVA_NEXT_GRIDS)
    with pytest.raises(ValueError):
        select_best_resolution((100, 100), [])
    with pytest.raises(TypeError):
        select_best_resolution((100.5, 100), LLAVA_NEXT_GRIDS)
    with pytest.raises(ValueError):
        unpad(torch.zeros(4, 4), (4, 4))
    with pytest.raises(ValueError):
        anyres_num_tokens((100, 100), tile_size=330, patch_size=14)


def test_anyres_viewer_numbers_and_build():
    import matplotlib

    matplotlib.use("Agg")
    from vislab.widgets import tiling

    rows = tiling.anyres_table(640, 427)
    assert [r["chosen"] for r in rows] == [False, False, True, False, False]
    assert rows[2]["effective"] == 640 * 427
    text = tiling.anyres_summary(640, 427)
    assert "2,144" in text and "2,928" in text and "1,792" in text
    img = Image.new("RGB", (500, 250), (10, 200, 30))
    assert len(tiling.anyres_figure(img).axes) == 3
    w = tiling.anyres_viewer({"a": img})
    table = next(c for c in w.children if isinstance(c, W.HTML) and "<table" in c.value)
    assert "chosen" in table.value
