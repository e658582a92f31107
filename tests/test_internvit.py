"""Tests for vislab.internvit: InternVL's tiling, pixel shuffle and projector.

References: transformers' InternVL port (``InternVLModel.pixel_shuffle``,
``InternVLMultiModalProjector``) and its GOT-OCR2 image processor, which implements
InternVL's ``dynamic_preprocess`` (``crop_image_to_patches``).
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from vislab.internvit import (
    MLPProjector, candidate_grids, dynamic_preprocess, find_closest_aspect_ratio,
    inverse_pixel_shuffle, num_image_tokens, pixel_shuffle, shuffle_tokens, tile_grid,
    tile_tensor, tokens_per_tile,
)

got_ocr2 = pytest.importorskip("transformers.models.got_ocr2.image_processing_pil_got_ocr2")
internvl = pytest.importorskip("transformers.models.internvl.modeling_internvl")


def _random_image(width, height, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# ---------------------------------------------------------------- grid choice

def test_candidate_grids_are_internvls_set():
    for lo, hi in [(1, 12), (1, 6), (2, 9), (4, 4)]:
        ours = candidate_grids(lo, hi)
        ref = got_ocr2.get_all_supported_aspect_ratios(lo, hi)
        assert sorted(ours) == sorted(ref)
        assert len(set(ours)) == len(ours)
        counts = [i * j for i, j in ours]
        assert counts == sorted(counts) and min(counts) >= lo and max(counts) <= hi


@pytest.mark.parametrize("max_num", [1, 2, 6, 12])
def test_tile_grid_matches_transformers(max_num):
    rng = np.random.default_rng(max_num)
    sizes = [(448, 448), (896, 448), (1792, 896), (1000, 1000), (4032, 3024), (3024, 4032),
             (2480, 3508), (6000, 1000), (100, 3000), (1, 1)]
    sizes += [tuple(int(v) for v in rng.integers(1, 5000, 2)) for _ in range(300)]
    for w, h in sizes:
        ref = got_ocr2.get_optimal_tiled_canvas((h, w), (448, 448), 1, max_num)
        assert tile_grid(w, h, 1, max_num) == tuple(ref), (w, h)


def test_tie_goes_to_larger_grid_only_for_large_images():
    # aspect 2: (2, 1) and (4, 2) tie exactly; (4, 2) needs area > 0.5 * 448^2 * 8
    assert tile_grid(896, 448) == (2, 1)
    assert tile_grid(1792, 896) == (4, 2)
    # square: (1,1), (2,2), (3,3) tie; (4,4) is over 12 tiles
    assert tile_grid(448, 448) == (1, 1)
    assert tile_grid(634, 634) == (2, 2)     # 634^2 = 401956 > 401408
    assert tile_grid(633, 633) == (1, 1)     # 633^2 = 400689 < 401408
    assert tile_grid(4000, 4000) == (3, 3)


def test_find_closest_aspect_ratio_scans_in_order():
    # a strictly closer ratio always wins, whatever comes later
    assert find_closest_aspect_ratio(1.9, [(2, 1), (1, 1)], 100, 100, 448) == (2, 1)
    # exact tie, small image: the first stays
    assert find_closest_aspect_ratio(1.25, [(1, 2), (2, 1)], 500, 400, 448) == (1, 2)
    # exact tie, image area > half the later grid's: the later wins
    assert find_closest_aspect_ratio(1.25, [(1, 2), (2, 1)], 1000, 800, 448) == (2, 1)


def test_dynamic_preprocess_equals_transformers_pixel_for_pixel():
    from transformers.image_utils import SizeDict
    proc = got_ocr2.GotOcr2ImageProcessorPil()
    for (w, h), size in [((700, 300), 56), ((120, 500), 28), ((64, 64), 32), ((333, 222), 40)]:
        img = _random_image(w, h, seed=w)
        ref = proc.crop_image_to_patches(np.array(img), 1, 12, use_thumbnail=True,
                                         patch_size=SizeDict(height=size, width=size),
                                         resample=Image.BICUBIC)
        ours = dynamic_preprocess(img, 1, 12, size, use_thumbnail=True)
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            assert a.size == (size, size)
            np.testing.assert_array_equal(np.array(a), b)


def test_dynamic_preprocess_row_major_and_thumbnail():
    img = Image.new("RGB", (200, 100))
    for x in range(200):                    # paint the 2x1 halves differently
        for y in range(100):
            img.putpixel((x, y), (255, 0, 0) if x < 100 else (0, 0, 255))
    tiles = dynamic_preprocess(img, max_num=12, image_size=50)
    cols, rows = tile_grid(200, 100, 1, 12, 50)
    assert (cols, rows) == (4, 2)           # 200*100 > 0.5*50^2*8: the tie goes to (4, 2)
    assert len(tiles) == cols * rows + 1
    reds = [np.array(t)[..., 0].mean() > 128 for t in tiles[:-1]]
    assert reds == [True, True, False, False, True, True, False, False]
    assert dynamic_preprocess(_random_image(448, 448), image_size=448)[0].size == (448, 448)
    assert len(dynamic_preprocess(_random_image(448, 448), image_size=448)) == 1   # no thumbnail
    assert len(dynamic_preprocess(img, image_size=50, use_thumbnail=False)) == 8


def test_tile_tensor_layout():
    img = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    tiles = tile_tensor(img, (3, 2), image_size=2, antialias=False)
    assert tiles.shape == (7, 2, 2, 2)
    torch.testing.assert_close(tiles[1], img[:, 0:2, 2:4])    # same size: no resampling
    torch.testing.assert_close(tiles[3], img[:, 2:4, 0:2])    # row-major
    assert tile_tensor(img, (1, 1), image_size=2).shape == (1, 2, 2, 2)


def test_token_counts():
    assert tokens_per_tile(448, 14, 0.5) == 256              # 32*32 = 1024 -> 256
    assert num_image_tokens(448, 448) == 256
    assert num_image_tokens(4032, 3024) == (12 + 1) * 256    # 4x3 grid + thumbnail
    proc = got_ocr2.GotOcr2ImageProcessorPil(crop_to_patches=True, size={"height": 448, "width": 448})
    for w, h in [(4032, 3024), (2480, 3508), (1000, 300), (448, 448)]:
        assert num_image_tokens(w, h) == proc.get_number_of_image_patches(h, w) * 256


def test_bad_inputs():
    with pytest.raises(ValueError):
        candidate_grids(3, 2)
    with pytest.raises(ValueError):
        candidate_grids(0, 2)
    with pytest.raises(TypeError):
        dynamic_preprocess(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError):
        find_closest_aspect_ratio(0.0, [(1, 1)], 1, 1, 448)
    with pytest.raises(ValueError):
        find_closest_aspect_ratio(1.0, [], 1, 1, 448)
    with pytest.raises(ValueError):
        tokens_per_tile(112, 16, 0.5)                        # a 7x7 grid cannot be shuffled by 2
    with pytest.raises(ValueError):
        tokens_per_tile(450, 14)                             # not a whole number of patches
    assert tokens_per_tile(224, 16) == 49                    # 14x14 -> 7x7


# ---------------------------------------------------------------- pixel shuffle

@pytest.mark.parametrize("shape", [(2, 32, 32, 8), (1, 4, 6, 3), (3, 6, 2, 5), (1, 2, 2, 1)])
def test_pixel_shuffle_matches_internvl(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    ref = internvl.InternVLModel.pixel_shuffle(None, x, scale_factor=0.5)
    ours = pixel_shuffle(x, 0.5)
    assert ours.shape == (shape[0], shape[1] // 2, shape[2] // 2, 4 * shape[3])
    assert torch.equal(ours, ref)


def test_pixel_shuffle_channel_order_and_inverse():
    B, W, H, C = 2, 6, 4, 3
    x = torch.randn(B, W, H, C)
    y = pixel_shuffle(x)
    for a in range(2):
        for b in range(2):
            torch.testing.assert_close(y[..., (a * 2 + b) * C:(a * 2 + b + 1) * C], x[:, a::2, b::2, :],
                                       rtol=0, atol=0)
    assert torch.equal(inverse_pixel_shuffle(y), x)
    assert torch.equal(pixel_shuffle(inverse_pixel_shuffle(y)), y)
    # other factors
    x3 = torch.randn(1, 9, 6, 2)
    assert pixel_shuffle(x3, 1 / 3).shape == (1, 3, 2, 18)
    assert torch.equal(inverse_pixel_shuffle(pixel_shuffle(x3, 1 / 3), 1 / 3), x3)
    # v1 is v2 transposed, and also invertible
    torch.testing.assert_close(pixel_shuffle(x, version="v1"), y.transpose(1, 2), rtol=0, atol=0)
    assert torch.equal(inverse_pixel_shuffle(pixel_shuffle(x, version="v1"), version="v1"), x)


def test_pixel_shuffle_is_torch_pixel_unshuffle_with_other_channel_order():
    B, W, H, C, r = 2, 8, 6, 5, 2
    x = torch.randn(B, W, H, C)
    torch_out = F.pixel_unshuffle(x.permute(0, 3, 1, 2), r)          # (B, C*r*r, W/r, H/r), channel c*r*r + k
    torch_out = torch_out.permute(0, 2, 3, 1)                        # (B, W/r, H/r, C*r*r)
    reordered = torch_out.reshape(B, W // r, H // r, C, r * r).transpose(-1, -2).reshape(B, W // r, H // r, -1)
    assert torch.equal(pixel_shuffle(x), reordered)


def test_pixel_shuffle_bad_sizes_raise_clear_errors():
    with pytest.raises(ValueError, match="multiples of 2"):
        pixel_shuffle(torch.zeros(1, 7, 7, 4))
    with pytest.raises(ValueError, match="multiples of 2"):
        pixel_shuffle(torch.zeros(1, 8, 5, 4))
    with pytest.raises(ValueError):
        pixel_shuffle(torch.zeros(1, 8, 8, 4), scale_factor=0.3)
    with pytest.raises(ValueError):
        pixel_shuffle(torch.zeros(1, 8, 8, 4), scale_factor=2)
    with pytest.raises(ValueError):
        pixel_shuffle(torch.zeros(64, 4))
    with pytest.raises(TypeError):
        pixel_shuffle(np.zeros((1, 8, 8, 4)))
    with pytest.raises(ValueError):
        inverse_pixel_shuffle(torch.zeros(1, 4, 4, 6))
    with pytest.raises(ValueError):
        pixel_shuffle(torch.zeros(1, 8, 8, 4), version="v3")


def test_shuffle_tokens_448_at_patch_14():
    tokens = torch.randn(2, 1024, 16)                   # 448/14 = 32, 32*32 = 1024 patch tokens
    out = shuffle_tokens(tokens)
    assert out.shape == (2, 256, 64)
    grid = tokens.reshape(2, 32, 32, 16)
    assert torch.equal(out, pixel_shuffle(grid).reshape(2, 256, 64))
    assert shuffle_tokens(torch.randn(1, 24, 3), grid=(4, 6)).shape == (1, 6, 12)
    with pytest.raises(ValueError, match="CLS"):
        shuffle_tokens(torch.randn(1, 1025, 4))
    with pytest.raises(ValueError):
        shuffle_tokens(torch.randn(1, 24, 3), grid=(5, 5))


# ---------------------------------------------------------------- projector

def test_projector_matches_transformers():
    from transformers.models.internvl.configuration_internvl import InternVLConfig
    cfg = InternVLConfig(
        vision_config=dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16),
        text_config=dict(model_type="qwen2", hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=32, vocab_size=50),
    )
    torch.manual_seed(0)
    ref = internvl.InternVLMultiModalProjector(cfg).eval()
    with torch.no_grad():                   # non-trivial norm parameters
        ref.layer_norm.weight.normal_()
        ref.layer_norm.bias.normal_()
    ours = MLPProjector(vision_dim=8, llm_dim=16).eval()
    missing = ours.load_state_dict(ref.state_dict())
    assert not missing.missing_keys and not missing.unexpected_keys
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(ours(x), ref(x))
    # the whole InternVL path: (B, N, C) tokens -> shuffle -> project
    tokens = torch.randn(2, 64, 8)
    ref_path = ref(internvl.InternVLModel.pixel_shuffle(None, tokens.reshape(2, 8, 8, 8)).reshape(2, 16, 32))
    torch.testing.assert_close(ours(shuffle_tokens(tokens)), ref_path)
    with pytest.raises(ValueError):
        ours(torch.randn(2, 5, 8))


# ---------------------------------------------------------------- the miniature and its task

def test_mini_internvl_shapes_and_checks():
    from vislab.internvit import MiniInternVL
    from vislab.vit import ViTConfig

    cfg = ViTConfig(image_size=32, patch_size=8, dim=32, depth=1, heads=2, num_classes=0)
    m = MiniInternVL(cfg, llm_dim=24, heads={"a": 3, "b": 5}).eval()
    views = torch.rand(6, 3, 32, 32)
    assert m.encode(views).shape == (6, 4, 24)             # 4x4 patches -> 2x2 after pixel shuffle
    out = m(views)
    assert out["a"].shape == (6, 3) and out["b"].shape == (6, 5)
    assert m(torch.rand(1, 3, 64, 96))["a"].shape == (1, 3)  # a larger view: resampled positions
    with pytest.raises(ValueError):
        MiniInternVL(cfg.replace(num_classes=4), 24, {"a": 3})
    with pytest.raises(ValueError):
        MiniInternVL(ViTConfig(image_size=24, patch_size=8, dim=32, depth=1, heads=2), 24, {"a": 3})   # 3x3 grid
    with pytest.raises(ValueError):
        MiniInternVL(cfg, 24, {})


def test_detail_task_data_and_pipelines():
    from vislab.recipes import detail

    a = detail.make_canvases(6, (128, 96), seed=3, split="test")
    b = detail.make_canvases(6, (128, 96), seed=3, split="test")
    assert torch.equal(a.images, b.images) and torch.equal(a.glyph, b.glyph)
    assert a.images.shape == (6, 3, 96, 128) and a.images.min() >= 0 and a.images.max() <= 1
    assert set(a.relation.tolist()) <= {0, 1, 2, 3}
    # the glyph sits away from the big shape
    assert (torch.hypot(*(a.glyph_xy - a.big_xy).T) > a.big_radius).all()
    views, labels = detail.training_views(a, crops_per_canvas=4, seed=0)
    assert views.shape == (6 * 5, 3, 32, 32)
    assert labels["glyph"].shape == (30,) and (labels["glyph"][-6:] == a.glyph).all()
    assert (labels["glyph"][0:24:4] == a.glyph).all()       # even crops hold the glyph's centre
    img = a.images[0]
    assert detail.views_for(img, "downscale").shape == (1, 3, 32, 32)
    assert detail.views_for(img, "internvl").shape == (13, 3, 32, 32)        # 4x3 tiles + thumbnail
    assert detail.views_for(img, "internvl_tiles").shape == (12, 3, 32, 32)
    grids = [(128, 96), (64, 64)]
    assert detail.views_for(img, "anyres", grids=grids).shape == (13, 3, 32, 32)
    assert torch.equal(detail.views_for(img, "internvl_tiles")[5], img[:, 32:64, 32:64])   # native tiles, row-major
    with pytest.raises(ValueError):
        detail.views_for(img, "nope")
    with pytest.raises(ValueError):
        detail.make_canvases(2, (30, 30))


def test_flip_views_swaps_relations():
    from vislab.recipes import detail

    views = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).reshape(4, 3, 2, 2).repeat(16, 1, 1, 1)  # (64, 3, 2, 2)
    rel = torch.tensor([0, 1, 2, 3]).repeat(16)
    glyph = torch.arange(64) % 8
    out, lab = detail.flip_views(views, {"glyph": glyph, "relation": rel}, torch.Generator().manual_seed(0))
    assert torch.equal(lab["glyph"], glyph)
    swap_lr, swap_ud = {0: 1, 1: 0, 2: 2, 3: 3}, {0: 0, 1: 1, 2: 3, 3: 2}
    seen = set()
    for i in range(64):
        x, r = views[i], int(rel[i])
        for (h, v), expect in {(False, False): r, (True, False): swap_lr[r], (False, True): swap_ud[r],
                               (True, True): swap_ud[swap_lr[r]]}.items():
            y = x.flip(-1) if h else x
            y = y.flip(-2) if v else y
            if torch.equal(out[i], y):
                assert int(lab["relation"][i]) == expect
                seen.add((h, v))
                break
        else:
            raise AssertionError(f"view {i} is not a flip of its input")
    assert len(seen) == 4                                   # all four cases occurred
    none = detail.flip_views(views[:4], {"glyph": glyph[:4], "relation": torch.full((4,), 4)},
                             torch.Generator().manual_seed(1))[1]["relation"]
    assert (none == 4).all()


def test_tiling_viewer_numbers_and_build():
    import matplotlib

    matplotlib.use("Agg")
    from vislab.widgets import tiling

    s = tiling.internvl_summary(4032, 3024)
    assert s["grid"] == (4, 3) and s["views"] == 13 and s["vit_tokens"] == 13 * 1024 and s["llm_tokens"] == 13 * 256
    assert tiling.internvl_summary(448, 448)["thumbnail"] is False
    img = Image.new("RGB", (320, 200), (200, 100, 50))
    fig = tiling.internvl_figure(img, max_num=6)
    assert len(fig.axes) == 3
    w = tiling.tiling_viewer({"a": img}, max_num=12)
    assert "LLM tokens" in w.children[2].value
    with pytest.raises(TypeError):
        tiling.internvl_figure(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError):
        tiling.tiling_viewer({})


def test_detail_recipe_scales_its_step_budget(monkeypatch):
    import copy

    from vislab.recipes import detail

    # the step count is the subject here; the (slow) evaluation on test canvases is tested elsewhere
    monkeypatch.setattr(detail, "evaluate", lambda model, canvases, pipeline: {"glyph": 0.0, "relation": 0.0})

    config = copy.deepcopy(detail.CONFIG)
    config["train"].update(steps=2, canvases_per_size=2, crops_per_canvas=1, batch_size=4)
    for scale in (1, 3):
        metrics = detail.train(detail.build(config), seed=0, device="cpu", config=config, progress=False,
                               scale=scale)
        assert metrics["steps"] == 2 * scale
